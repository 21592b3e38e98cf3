package sscardsim

import (
	"fmt"

	"github.com/kioskedge/kioskedge/firmware-specs/sscardvectors"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Card is a simulated card: its ATR and the records of EF05 and EF06 of its
// SSSE, each record as the TLV bytes READ RECORD returns (sscard.md §2.5).
type Card struct {
	ATR  []byte
	AID  []byte          // the application's AID; the SSSE AID for a real card
	EF05 map[byte][]byte // record number → TLV record
	EF06 map[byte][]byte
	// Locked makes SELECT of the application answer 6283 (blocked).
	Locked bool
}

// SSSEAID is "sx1.sh.社会保障" in GBK.
var SSSEAID = append([]byte("sx1.sh."), 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF)

// Holder is what NewCard writes to a card. Dates are "YYYYMMDD" or "".
type Holder struct {
	CardID      string // 16 characters, the first 6 the region code
	CardType    string
	SpecVersion string
	Issued      string
	ValidUntil  string
	CardNumber  string // 9 characters
	SSN         string // 18 characters
	Name        string // Chinese, encoded GBK
	Sex         string
	Ethnicity   string // 2 digits
	Birth       string
}

// NewCard builds a card holding h in the §2.5 layout. It fails for a name
// that GB18030 cannot encode or a field longer than its record.
func NewCard(h Holder) (*Card, error) {
	name, err := simplifiedchinese.GB18030.NewEncoder().String(h.Name)
	if err != nil {
		return nil, fmt.Errorf("sscardsim: name: %w", err)
	}
	c := &Card{
		ATR:  []byte{0x3B, 0x6D, 0x00, 0x00, 0x00, 0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x90, 0x00},
		AID:  SSSEAID,
		EF05: map[byte][]byte{},
		EF06: map[byte][]byte{},
	}
	type item struct {
		file map[byte][]byte
		rec  byte
		val  []byte
		err  error
	}
	an := func(s string, n int) ([]byte, error) { return pad([]byte(s), n, 0x00) }
	cn := func(s string, n int) ([]byte, error) { return bcd(s, n) }
	var items []item
	add := func(f map[byte][]byte, rec byte, b []byte, err error) {
		items = append(items, item{file: f, rec: rec, val: b, err: err})
	}
	b, err := an(h.CardID, 16)
	add(c.EF05, 0x01, b, err)
	b, err = an(h.CardType, 1)
	add(c.EF05, 0x02, b, err)
	b, err = an(h.SpecVersion, 4)
	add(c.EF05, 0x03, b, err)
	b, err = cn("", 12)
	add(c.EF05, 0x04, b, err)
	b, err = cn(h.Issued, 4)
	add(c.EF05, 0x05, b, err)
	b, err = cn(h.ValidUntil, 4)
	add(c.EF05, 0x06, b, err)
	b, err = an(h.CardNumber, 9)
	add(c.EF05, 0x07, b, err)
	b, err = an(h.SSN, 18)
	add(c.EF06, 0x08, b, err)
	b, err = pad([]byte(name), 30, 0x00)
	add(c.EF06, 0x09, b, err)
	b, err = an(h.Sex, 1)
	add(c.EF06, 0x0A, b, err)
	b, err = cn(h.Ethnicity, 1)
	add(c.EF06, 0x0B, b, err)
	b, err = cn("", 3)
	add(c.EF06, 0x0C, b, err)
	b, err = cn(h.Birth, 4)
	add(c.EF06, 0x0D, b, err)
	for _, it := range items {
		if it.err != nil {
			return nil, fmt.Errorf("sscardsim: record %02X: %w", it.rec, it.err)
		}
		it.file[it.rec] = append([]byte{it.rec, byte(len(it.val))}, it.val...)
	}
	return c, nil
}

func pad(b []byte, n int, with byte) ([]byte, error) {
	if len(b) > n {
		return nil, fmt.Errorf("%d bytes do not fit in %d", len(b), n)
	}
	out := make([]byte, n)
	copy(out, b)
	for i := len(b); i < n; i++ {
		out[i] = with
	}
	return out, nil
}

// bcd packs digits into n bytes, right-padded with F nibbles.
func bcd(s string, n int) ([]byte, error) {
	if len(s) > 2*n {
		return nil, fmt.Errorf("%d digits do not fit in %d bytes", len(s), n)
	}
	out := make([]byte, n)
	for i := range 2 * n {
		d := byte(0x0F)
		if i < len(s) {
			if s[i] < '0' || s[i] > '9' {
				return nil, fmt.Errorf("not a digit: %q", s[i])
			}
			d = s[i] - '0'
		}
		if i%2 == 0 {
			out[i/2] = d << 4
		} else {
			out[i/2] |= d
		}
	}
	return out, nil
}

// VectorCard is the fake card of the spec vectors (sscardvectors), record
// for record.
func VectorCard() *Card {
	v := sscardvectors.MustLoad().Card
	c := &Card{ATR: sscardvectors.Bytes(v.ATR), AID: sscardvectors.Bytes(v.AID), EF05: map[byte][]byte{}, EF06: map[byte][]byte{}}
	for _, r := range v.EF05 {
		c.EF05[byte(r.Rec)] = sscardvectors.Bytes(r.Hex)
	}
	for _, r := range v.EF06 {
		c.EF06[byte(r.Rec)] = sscardvectors.Bytes(r.Hex)
	}
	return c
}

// OtherCard is a contact card without the social security application (a
// bank card, say): SELECT of the SSSE answers 6A82.
func OtherCard() *Card {
	return &Card{ATR: []byte{0x3B, 0x02, 0x14, 0x50}, AID: []byte{0xA0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01}}
}
