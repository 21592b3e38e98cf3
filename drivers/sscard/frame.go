package sscard

import "fmt"

// Reader-transport framing, sscard.md §1.1.
const (
	STX        = 0x02
	ETX        = 0x03
	MaxPayload = 512 // the largest LEN
)

// Reader commands and reply status bytes, sscard.md §1.2 and §1.3.
const (
	CmdCardStatus = 0x11
	CmdPowerOn    = 0x12
	CmdPowerOff   = 0x13
	CmdTransmit   = 0x14

	StatusOK          = 0x00
	StatusNoCard      = 0x01
	StatusCardMute    = 0x02
	StatusNotPowered  = 0x03
	StatusUnknownCmd  = 0x04
	StatusBadChecksum = 0x05
)

// AppendFrame appends the frame carrying payload to dst. It fails (ErrFraming)
// for an empty payload or one longer than MaxPayload.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) == 0 || len(payload) > MaxPayload {
		return dst, fmt.Errorf("%w: payload of %d bytes", ErrFraming, len(payload))
	}
	hi, lo := byte(len(payload)>>8), byte(len(payload))
	bcc := hi ^ lo
	for _, c := range payload {
		bcc ^= c
	}
	dst = append(dst, STX, hi, lo)
	dst = append(dst, payload...)
	return append(dst, bcc, ETX), nil
}

// ParseFrame looks at the start of b for one frame, following the receive
// rules of sscard.md §1.1. It returns how many bytes of b the caller drops
// (n) and:
//
//   - payload, nil: a valid frame; payload aliases b.
//   - nil, ErrShortFrame: more bytes are needed; n is 0.
//   - nil, ErrFraming: n bytes of garbage before an STX; a bad STX (bad
//     length, no ETX) of which n = 1 byte is dropped; or an incomplete
//     frame with a complete valid one n bytes further on (rule 6).
//   - nil, ErrChecksum: a whole frame with a bad BCC; n is its length.
//
// It never panics and never returns n > len(b).
func ParseFrame(b []byte) (payload []byte, n int, err error) {
	if len(b) == 0 {
		return nil, 0, ErrShortFrame
	}
	if b[0] != STX {
		i := 1
		for i < len(b) && b[i] != STX {
			i++
		}
		return nil, i, ErrFraming
	}
	payload, n, err = parseAt(b)
	if err == ErrShortFrame {
		// Rule 6: a stray STX (in garbage, or a truncated frame's) must not
		// hold up a complete frame already received behind it.
		for i := 1; i < len(b); i++ {
			if b[i] != STX {
				continue
			}
			if _, _, e := parseAt(b[i:]); e == nil {
				return nil, i, ErrFraming
			}
		}
	}
	return payload, n, err
}

// parseAt applies rules 2 to 5 to a frame starting at b[0] == STX.
func parseAt(b []byte) (payload []byte, n int, err error) {
	if len(b) < 3 {
		return nil, 0, ErrShortFrame
	}
	l := int(b[1])<<8 | int(b[2])
	if l == 0 || l > MaxPayload {
		return nil, 1, ErrFraming
	}
	total := l + 5
	if len(b) < total {
		return nil, 0, ErrShortFrame
	}
	if b[total-1] != ETX {
		return nil, 1, ErrFraming
	}
	bcc := b[1] ^ b[2]
	for _, c := range b[3 : 3+l] {
		bcc ^= c
	}
	if bcc != b[3+l] {
		return nil, total, ErrChecksum
	}
	return b[3 : 3+l], total, nil
}
