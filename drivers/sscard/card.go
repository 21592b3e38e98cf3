package sscard

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Card is what ReadCard decodes from EF05 and EF06 (sscard.md §2.5).
// CardID, CardNumber, SSN, Name and Birth are personal data: Card formats
// itself masked in fmt (every verb) and slog.
type Card struct {
	Reader string    // the reader's configured name
	ReadAt time.Time // when the read completed
	ATR    []byte    // the card's answer to reset

	CardID      string    // EF05/01 card identification code
	Region      string    // issuing region: the first 6 characters of CardID
	CardType    string    // EF05/02, may be empty
	SpecVersion string    // EF05/03, e.g. "3.00"
	Issued      time.Time // EF05/05, a date (UTC midnight); zero if not set
	ValidUntil  time.Time // EF05/06, a date; zero if not set
	CardNumber  string    // EF05/07

	SSN       string    // EF06/08 social security number
	Name      string    // EF06/09, decoded from GBK/GB18030
	Sex       string    // EF06/0A: "1" male, "2" female, "0"/"9" not stated
	Ethnicity string    // EF06/0B, 2 digits, may be empty
	Birth     time.Time // EF06/0D, a date; zero if not set
}

// Credential returns the credential the access engine hashes: Kind SSCard,
// Encoding "ssn", Number the social security number (sscard.md §2.7).
func (c Card) Credential() credential.Credential {
	return credential.Credential{
		Kind:     credential.SSCard,
		Reader:   c.Reader,
		Time:     c.ReadAt,
		Encoding: "ssn",
		Number:   c.SSN,
	}
}

// String formats the card with every personal field masked.
func (c Card) String() string {
	return fmt.Sprintf("social security card %s (ssn %s, name %s, region %s, spec %s, valid until %s) on %s",
		credential.Mask(c.CardNumber), credential.Mask(c.SSN), credential.MaskName(c.Name),
		c.Region, c.SpecVersion, dateString(c.ValidUntil), c.Reader)
}

// GoString keeps %#v masked.
func (c Card) GoString() string { return "sscard.Card{" + c.String() + "}" }

// Format keeps every fmt verb masked.
func (c Card) Format(f fmt.State, verb rune) { credential.FormatMasked(f, verb, c.String()) }

// LogValue makes slog print the card masked.
func (c Card) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("reader", c.Reader),
		slog.String("card_number", credential.Mask(c.CardNumber)),
		slog.String("ssn", credential.Mask(c.SSN)),
		slog.String("name", credential.MaskName(c.Name)),
		slog.String("region", c.Region),
		slog.String("spec_version", c.SpecVersion),
		slog.String("valid_until", dateString(c.ValidUntil)),
	)
}

func dateString(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.DateOnly)
}

// decodeAN decodes an "an" item: ASCII, right-padded with 00 (or spaces).
// Non-printable ASCII inside is ErrMalformed.
func decodeAN(b []byte) (string, error) {
	b = bytes.TrimRight(b, "\x00 ")
	for _, c := range b {
		if c < 0x20 || c > 0x7E {
			return "", fmt.Errorf("%w: byte %02X in a text item", ErrMalformed, c)
		}
	}
	return string(b), nil
}

// decodeCN decodes a "cn" item: BCD digits right-padded with F nibbles.
func decodeCN(b []byte) (string, error) {
	out := make([]byte, 0, 2*len(b))
	done := false
	for _, c := range b {
		for _, d := range [2]byte{c >> 4, c & 0x0F} {
			switch {
			case d == 0x0F:
				done = true
			case done || d > 9:
				return "", fmt.Errorf("%w: BCD byte %02X", ErrMalformed, c)
			default:
				out = append(out, '0'+d)
			}
		}
	}
	return string(out), nil
}

// decodeGBK decodes a GBK/GB18030 text item padded with 00 or spaces.
func decodeGBK(b []byte) (string, error) {
	b = bytes.TrimRight(b, "\x00 ")
	s, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
	if err != nil {
		return "", fmt.Errorf("%w: GB18030 text: %v", ErrMalformed, err)
	}
	for _, r := range string(s) {
		if r == '\uFFFD' || r < 0x20 {
			return "", fmt.Errorf("%w: undecodable GB18030 text", ErrMalformed)
		}
	}
	return string(s), nil
}

// decodeDate decodes a cn4 date YYYYMMDD; 00000000 or all F is the zero time.
func decodeDate(b []byte) (time.Time, error) {
	s, err := decodeCN(b)
	if err != nil {
		return time.Time{}, err
	}
	if s == "" || s == "00000000" {
		return time.Time{}, nil
	}
	t, err := time.Parse("20060102", s)
	if err != nil || len(s) != 8 {
		return time.Time{}, fmt.Errorf("%w: not a calendar date", ErrMalformed) // the value is personal data (a birth date)
	}
	return t, nil
}
