package idcard

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
)

// Layout of the base-info data (§5).
const (
	TextLen     = 256  // the text block's required length
	PhotoLen    = 1024 // the photo length on current cards (others are accepted)
	minBaseInfo = 4 + TextLen
)

// text field offsets and sizes in bytes (§5).
var fields = []struct {
	name     string
	off, len int
}{
	{"name", 0, 30},
	{"sex", 30, 2},
	{"ethnicity", 32, 4},
	{"birth_date", 36, 16},
	{"address", 52, 70},
	{"number", 122, 36},
	{"issuer", 158, 30},
	{"valid_from", 188, 16},
	{"valid_until", 204, 16},
}

// LongTermText is the valid-until value of a card that does not expire.
const LongTermText = "长期"

// ParseBaseInfo decodes the data of a read-base-info response (after SW1
// SW2 SW3, §5) into a Card with every text field decoded, trimmed and
// validated, and the photo copied out undecoded. Reader and ReadAt are left
// zero.
//
// Errors: ErrMalformed when the lengths do not add up (text length not 256,
// data length not 4 + text + photo); a *FieldError (errors.Is ErrBadField)
// naming the first field that fails validation. Errors never include field
// values.
func ParseBaseInfo(data []byte) (Card, error) {
	if len(data) < minBaseInfo {
		return Card{}, ErrMalformed
	}
	textLen := int(data[0])<<8 | int(data[1])
	photoLen := int(data[2])<<8 | int(data[3])
	if textLen != TextLen || len(data) != 4+textLen+photoLen {
		return Card{}, ErrMalformed
	}
	text := data[4 : 4+TextLen]
	var raw [9]string
	for i, f := range fields {
		s, err := decodeUCS2(text[f.off : f.off+f.len])
		if err != nil {
			return Card{}, &FieldError{Field: f.name, Reason: err.Error()}
		}
		raw[i] = s
	}
	var c Card
	var err error
	c.Name = raw[0]
	if c.Name == "" {
		return Card{}, &FieldError{"name", "empty"}
	}
	if len(raw[1]) != 1 || SexName(Sex(raw[1][0])) == "" {
		return Card{}, &FieldError{"sex", "unknown code"}
	}
	c.Sex = Sex(raw[1][0])
	if len(raw[2]) != 2 || !isDigits(raw[2]) {
		return Card{}, &FieldError{"ethnicity", "not two digits"}
	}
	c.Ethnicity = raw[2]
	if c.BirthDate, err = parseDate(raw[3]); err != nil {
		return Card{}, &FieldError{"birth_date", err.Error()}
	}
	if c.Address = raw[4]; c.Address == "" {
		return Card{}, &FieldError{"address", "empty"}
	}
	c.Number = strings.ToUpper(raw[5])
	if reason := checkNumber(c.Number); reason != "" {
		return Card{}, &FieldError{"number", reason}
	}
	if c.Issuer = raw[6]; c.Issuer == "" {
		return Card{}, &FieldError{"issuer", "empty"}
	}
	if c.ValidFrom, err = parseDate(raw[7]); err != nil {
		return Card{}, &FieldError{"valid_from", err.Error()}
	}
	if raw[8] == LongTermText {
		c.LongTerm = true
	} else if c.ValidUntil, err = parseDate(raw[8]); err != nil {
		return Card{}, &FieldError{"valid_until", err.Error()}
	}
	c.Photo = append([]byte(nil), data[4+TextLen:]...)
	return c, nil
}

type reasonError string

func (r reasonError) Error() string { return string(r) }

// decodeUCS2 decodes UTF-16LE b and trims padding (§5).
func decodeUCS2(b []byte) (string, error) {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	for len(u) > 0 && (u[len(u)-1] == ' ' || u[len(u)-1] == 0) {
		u = u[:len(u)-1]
	}
	for len(u) > 0 && u[0] == ' ' {
		u = u[1:]
	}
	for i := 0; i < len(u); i++ {
		switch {
		case utf16.IsSurrogate(rune(u[i])):
			if i+1 < len(u) && u[i] < 0xDC00 && u[i+1] >= 0xDC00 && u[i+1] < 0xE000 {
				i++
				continue
			}
			return "", reasonError("unpaired surrogate")
		case unicode.IsControl(rune(u[i])):
			return "", reasonError("control character")
		}
	}
	return string(utf16.Decode(u)), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseDate parses YYYYMMDD into midnight UTC of that calendar date.
func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, reasonError("empty")
	}
	if len(s) != 8 || !isDigits(s) {
		return time.Time{}, reasonError("not a date")
	}
	t, err := time.Parse("20060102", s)
	if err != nil {
		return time.Time{}, reasonError("not a date")
	}
	return t, nil
}

var checkWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const checkChars = "10X98765432"

// CheckDigit returns the ISO 7064 MOD 11-2 check character ('0'–'9' or 'X')
// for the first 17 characters of an ID number (§5), or 0 when they are not
// 17 ASCII digits.
func CheckDigit(first17 string) byte {
	if len(first17) < 17 || !isDigits(first17[:17]) {
		return 0
	}
	sum := 0
	for i, w := range checkWeights {
		sum += int(first17[i]-'0') * w
	}
	return checkChars[sum%11]
}

// ValidNumber reports whether n is an 18-character resident ID number with
// a correct check character (a lower-case x is accepted).
func ValidNumber(n string) bool { return checkNumber(strings.ToUpper(n)) == "" }

func checkNumber(n string) string {
	if len(n) != 18 {
		return "not 18 characters"
	}
	c := CheckDigit(n)
	if c == 0 {
		return "not digits"
	}
	if n[17] != c {
		return "bad check digit"
	}
	return ""
}

// Sex is the sex code of §6 ('0', '1', '2' or '9').
type Sex byte

// Sex codes (§6).
const (
	SexUnknown   Sex = '0'
	SexMale      Sex = '1'
	SexFemale    Sex = '2'
	SexNotStated Sex = '9'
)

// SexName returns the Chinese name of a sex code ("男"), or "" for a code
// not in §6.
func SexName(s Sex) string {
	switch s {
	case SexUnknown:
		return "未知"
	case SexMale:
		return "男"
	case SexFemale:
		return "女"
	case SexNotStated:
		return "未说明"
	}
	return ""
}

// String returns SexName, or the code in hex for an unknown one.
func (s Sex) String() string {
	if n := SexName(s); n != "" {
		return n
	}
	return "sex(" + string(rune(s)) + ")"
}

var ethnicities = [...]string{
	"", "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜",
	"满", "侗", "瑶", "白", "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳",
	"佤", "畲", "高山", "拉祜", "水", "东乡", "纳西", "景颇", "柯尔克孜", "土",
	"达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米",
	"塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔",
	"独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
}

// EthnicityName returns the name for a two-digit ethnicity code of §6
// ("01" → "汉"), or "" for a code not in the table.
func EthnicityName(code string) string {
	if len(code) != 2 || !isDigits(code) {
		return ""
	}
	n := int(code[0]-'0')*10 + int(code[1]-'0')
	switch {
	case n >= 1 && n < len(ethnicities):
		return ethnicities[n]
	case n == 97:
		return "其他"
	case n == 98:
		return "外国血统中国籍人士"
	}
	return ""
}
