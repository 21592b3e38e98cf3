package wiegand

import (
	"fmt"
	"strconv"
	"strings"
)

// CanonicalNumber returns a card number of a known format in the form the
// decoder gives credentials ("012-03456" for H10301: facility and card
// zero-padded to the format's widths, firmware-specs/wiegand.md §4), from
// "12-3456" or the canonical form itself, so a list written by hand hashes
// like the card read at the gate. It returns an error wrapping ErrConfig for
// an unknown encoding, a malformed number or a field too large for the
// format. Raw credentials have no other form and are returned as given.
func CanonicalNumber(encoding, number string) (string, error) {
	if encoding == "raw" {
		return number, nil
	}
	var fm format
	found := false
	for _, f := range formats {
		if f.encoding == encoding {
			fm, found = f, true
		}
	}
	if !found {
		return "", fmt.Errorf("%w: unknown Wiegand encoding %q", ErrConfig, encoding)
	}
	fcText, cardText, ok := strings.Cut(strings.TrimSpace(number), "-")
	if !ok {
		return "", fmt.Errorf("%w: a %s number is facility-card, like 12-3456", ErrConfig, encoding)
	}
	fc, err1 := strconv.ParseUint(fcText, 10, 32)
	card, err2 := strconv.ParseUint(cardText, 10, 32)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("%w: a %s number is two decimal fields, like 12-3456", ErrConfig, encoding)
	}
	if fc >= 1<<fm.fcBits || card >= 1<<fm.cardBits {
		return "", fmt.Errorf("%w: %s holds a facility below %d and a card below %d", ErrConfig, encoding, 1<<fm.fcBits, 1<<fm.cardBits)
	}
	return fm.number(fc, card), nil
}
