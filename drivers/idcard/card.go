package idcard

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
)

// Card is what a resident ID card holds (§5). Name, Number, Address and
// BirthDate are personal data: a Card formats itself masked for every fmt
// verb and for slog, so passing one to a logger never leaks them.
type Card struct {
	Name      string
	Sex       Sex
	Ethnicity string    // two-digit code, see EthnicityName
	BirthDate time.Time // midnight UTC of the calendar date
	Address   string
	Number    string // 18 characters, check character upper-cased
	Issuer    string
	ValidFrom time.Time // midnight UTC
	// ValidUntil is midnight UTC of the last valid date; zero when LongTerm.
	ValidUntil time.Time
	LongTerm   bool
	Photo      []byte // the wlt blob, undecoded

	Reader string    // the Reader's name; set by the Reader
	ReadAt time.Time // when the read completed; set by the Reader
}

// Credential returns the card as a credential of kind IDCard whose Number
// is the ID number.
func (c Card) Credential() credential.Credential {
	return credential.Credential{Kind: credential.IDCard, Reader: c.Reader, Time: c.ReadAt, Number: c.Number}
}

// ExpiredAt reports whether the card is no longer valid on the calendar date
// of t (in t's location). A long-term card never expires.
func (c Card) ExpiredAt(t time.Time) bool {
	if c.LongTerm || c.ValidUntil.IsZero() {
		return false
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).After(c.ValidUntil)
}

// String formats the card masked: "ID card 测*** 9901**********0015 on kiosk-1".
func (c Card) String() string {
	return fmt.Sprintf("ID card %s %s on %s", credential.MaskName(c.Name), credential.Mask(c.Number), c.Reader)
}

// GoString keeps %#v from printing the fields.
func (c Card) GoString() string { return "idcard.Card{" + c.String() + "}" }

// Format keeps every fmt verb from printing the fields.
func (c Card) Format(f fmt.State, verb rune) { credential.FormatMasked(f, verb, c.String()) }

// LogValue makes slog print the card masked.
func (c Card) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("reader", c.Reader),
		slog.String("name", credential.MaskName(c.Name)),
		slog.String("number", credential.Mask(c.Number)),
		slog.Bool("long_term", c.LongTerm),
	)
}
