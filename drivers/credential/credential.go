package credential

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says what sort of credential was presented.
type Kind string

// The kinds of credential the agent knows.
const (
	Wiegand Kind = "wiegand" // a card on a Wiegand reader
	OSDP    Kind = "osdp"    // a card on an OSDP reader
	Keypad  Kind = "keypad"  // a PIN typed on a reader's keypad
	IDCard  Kind = "idcard"  // a resident identity card
	SSCard  Kind = "sscard"  // a social security card
	QR      Kind = "qr"      // a scanned QR or barcode token
)

// Credential is one presentation of a credential at a reader.
type Credential struct {
	Kind   Kind
	Reader string    // the reader's configured name, e.g. "gate-1-in"
	Time   time.Time // when the read completed
	// Encoding names the card format: "H10301", "34bit", "H10304", "raw"
	// for Wiegand; "osdp-raw", "osdp-formatted" for OSDP; "" where a kind
	// has only one.
	Encoding string
	// Bits is the number of meaningful bits in Raw for bit-level formats
	// (Wiegand, OSDP raw); 0 otherwise.
	Bits int
	// Raw is the data exactly as read (card bits, token bytes).
	Raw []byte
	// Number is the credential's number in its canonical text form: the
	// card number (for H10301 "facility-card", e.g. "123-45678"), the ID or
	// social security number, the PIN, the QR payload. Personal data.
	Number string
}

// Normalized returns the canonical form the access engine hashes:
// "<kind>:<encoding>:<number>", with the number trimmed and upper-cased (ID
// numbers end in "X" or "x"). Two reads of the same card give the same
// string; it is personal data and must never be logged.
func (c Credential) Normalized() string {
	return string(c.Kind) + ":" + c.Encoding + ":" + strings.ToUpper(strings.TrimSpace(c.Number))
}

// Mask returns s with its middle replaced by '*': the first 4 and last 4
// characters stay for strings of 12 or more ("4601**********1234"), only
// the last 2 for shorter ones of 5 or more, nothing for shorter still.
func Mask(s string) string {
	n := utf8.RuneCountInString(s)
	keepHead, keepTail := 4, 4
	switch {
	case n >= 12:
	case n >= 5:
		keepHead, keepTail = 0, 2
	default:
		return strings.Repeat("*", n)
	}
	r := []rune(s)
	return string(r[:keepHead]) + strings.Repeat("*", n-keepHead-keepTail) + string(r[n-keepTail:])
}

// MaskName masks a person's name, keeping only its first character
// ("张**"); names are personal data.
func MaskName(name string) string {
	r := []rune(strings.TrimSpace(name))
	if len(r) == 0 {
		return ""
	}
	return string(r[0]) + strings.Repeat("*", len(r)-1)
}

// String formats the credential with its number masked.
func (c Credential) String() string {
	return fmt.Sprintf("%s credential %s on %s", c.Kind, Mask(c.Number), c.Reader)
}

// GoString keeps %#v from printing the number.
func (c Credential) GoString() string { return "credential.Credential{" + c.String() + "}" }

// Format keeps every fmt verb (%v, %+v, %s, %q…) from printing the fields.
func (c Credential) Format(f fmt.State, verb rune) { FormatMasked(f, verb, c.String()) }

// FormatMasked is the body of a fmt.Formatter for a type holding personal
// data: whatever the verb, it prints masked (quoted for %q), the type's
// already masked String form. Card types of the drivers use it.
func FormatMasked(f fmt.State, verb rune, masked string) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", masked)
		return
	}
	fmt.Fprint(f, masked)
}

// LogValue makes slog print the credential masked.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", string(c.Kind)),
		slog.String("reader", c.Reader),
		slog.String("encoding", c.Encoding),
		slog.String("number", Mask(c.Number)),
	)
}
