package sscard

import "fmt"

// TLV is one data item of a record (sscard.md §2.5). Value aliases the
// parsed bytes.
type TLV struct {
	Tag   byte
	Value []byte
}

// ParseTLV parses b as a sequence of TLVs with one-byte tags and BER short
// or long (81 LL, 82 HH LL) lengths. Tags 00 and FF are padding, allowed only
// when every remaining byte is padding. It returns ErrMalformed (wrapped)
// for a length that runs past the end, a missing length, the indefinite
// form 80, more than two length bytes, or padding followed by data.
func ParseTLV(b []byte) ([]TLV, error) {
	var out []TLV
	for i := 0; i < len(b); {
		tag := b[i]
		if tag == 0x00 || tag == 0xFF {
			for _, c := range b[i:] {
				if c != 0x00 && c != 0xFF {
					return nil, fmt.Errorf("%w: data after padding at offset %d", ErrMalformed, i)
				}
			}
			break
		}
		i++
		if i >= len(b) {
			return nil, fmt.Errorf("%w: tag %02X without a length", ErrMalformed, tag)
		}
		l := int(b[i])
		i++
		if l >= 0x80 {
			nb := l & 0x7F
			if nb == 0 || nb > 2 {
				return nil, fmt.Errorf("%w: tag %02X: length form %02X", ErrMalformed, tag, l)
			}
			if i+nb > len(b) {
				return nil, fmt.Errorf("%w: tag %02X: length cut short", ErrMalformed, tag)
			}
			l = 0
			for _, c := range b[i : i+nb] {
				l = l<<8 | int(c)
			}
			i += nb
		}
		if l > len(b)-i {
			return nil, fmt.Errorf("%w: tag %02X: length %d past the end", ErrMalformed, tag, l)
		}
		out = append(out, TLV{Tag: tag, Value: b[i : i+l]})
		i += l
	}
	return out, nil
}
