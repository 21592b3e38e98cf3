package idcard

import (
	"bytes"
	"fmt"
)

// Preamble starts every frame in both directions (§2).
var Preamble = [5]byte{0xAA, 0xAA, 0xAA, 0x96, 0x69}

const (
	headerLen = 7 // preamble and LEN
	// MaxLen is the largest LEN the decoders accept (§2).
	MaxLen = 0x1000
	// minRespLen is SW1 SW2 SW3 CHK.
	minRespLen = 4
)

// Command is a CMD PARA pair (§3).
type Command struct{ Cmd, Para byte }

// The commands the driver sends (§3).
var (
	CmdReset     = Command{0x10, 0xFF}
	CmdSAMStatus = Command{0x11, 0xFF}
	CmdFind      = Command{0x20, 0x01}
	CmdSelect    = Command{0x20, 0x02}
	CmdReadBase  = Command{0x30, 0x01}
)

// String names the command ("find card") or shows its bytes.
func (c Command) String() string {
	switch c {
	case CmdReset:
		return "reset SAM"
	case CmdSAMStatus:
		return "SAM status"
	case CmdFind:
		return "find card"
	case CmdSelect:
		return "select card"
	case CmdReadBase:
		return "read base info"
	}
	return fmt.Sprintf("command %02X %02X", c.Cmd, c.Para)
}

// Module status codes (SW3, §4).
const (
	StatusOK           byte = 0x90
	StatusFound        byte = 0x9F
	StatusChecksum     byte = 0x10
	StatusLength       byte = 0x11
	StatusBadCommand   byte = 0x21
	StatusNotPermitted byte = 0x23
	StatusUnknownError byte = 0x24
	StatusCardAuth     byte = 0x31
	StatusReaderAuth   byte = 0x32
	StatusVerify       byte = 0x33
	StatusWrongCard    byte = 0x40
	StatusReadFailed   byte = 0x41
	StatusRandom       byte = 0x47
	StatusSelfTest     byte = 0x60
	StatusUnauthorised byte = 0x66
	StatusNoCard       byte = 0x80
	StatusSelectFailed byte = 0x81
	StatusNoContent    byte = 0x91
)

var statusText = map[byte]string{
	StatusOK:           "success",
	StatusFound:        "card found",
	StatusChecksum:     "module saw a bad checksum",
	StatusLength:       "module saw a bad length",
	StatusBadCommand:   "unknown command or parameter",
	StatusNotPermitted: "command not permitted",
	StatusUnknownError: "unrecognised error",
	StatusCardAuth:     "card failed to authenticate the module",
	StatusReaderAuth:   "module failed to authenticate the card",
	StatusVerify:       "information check failed",
	StatusWrongCard:    "wrong card type",
	StatusReadFailed:   "reading the card failed",
	StatusRandom:       "getting a random number failed",
	StatusSelfTest:     "SAM self-test failed",
	StatusUnauthorised: "module not authorised",
	StatusNoCard:       "no card",
	StatusSelectFailed: "select card failed",
	StatusNoContent:    "no content",
}

// StatusText describes an SW3 code, or returns "unknown status".
func StatusText(sw3 byte) string {
	if s, ok := statusText[sw3]; ok {
		return s
	}
	return "unknown status"
}

// Response is a decoded reader-to-host frame.
type Response struct {
	SW1, SW2, SW3 byte
	Data          []byte // aliases the frame passed to DecodeResponse
}

func checksum(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

// AppendRequest appends the request frame for c with data to dst (§2). It
// panics if data would make the frame longer than MaxLen, which no command
// of §3 does.
func AppendRequest(dst []byte, c Command, data []byte) []byte {
	n := 2 + len(data) + 1
	if n > MaxLen {
		panic("idcard: request data too long")
	}
	dst = append(dst, Preamble[:]...)
	start := len(dst)
	dst = append(dst, byte(n>>8), byte(n), c.Cmd, c.Para)
	dst = append(dst, data...)
	return append(dst, checksum(dst[start:]))
}

// DecodeResponse decodes b, which must be exactly one response frame (§2).
// Errors: ErrShort (fewer than 7 bytes or fewer than LEN says), ErrPreamble,
// ErrLength (LEN below 4 or above MaxLen, or bytes after the checksum),
// ErrChecksum. The returned Data aliases b.
func DecodeResponse(b []byte) (Response, error) {
	if len(b) < headerLen {
		return Response{}, ErrShort
	}
	if !bytes.Equal(b[:5], Preamble[:]) {
		return Response{}, ErrPreamble
	}
	n := int(b[5])<<8 | int(b[6])
	if n < minRespLen || n > MaxLen {
		return Response{}, ErrLength
	}
	switch {
	case len(b)-headerLen < n:
		return Response{}, ErrShort
	case len(b)-headerLen > n:
		return Response{}, ErrLength
	}
	if checksum(b[5:len(b)-1]) != b[len(b)-1] {
		return Response{}, ErrChecksum
	}
	return Response{SW1: b[7], SW2: b[8], SW3: b[9], Data: b[10 : len(b)-1]}, nil
}

// Split finds the first response frame in a receive buffer (§7). It returns
// how many bytes to drop from the front of buf and, when a whole frame with
// a good checksum starts at buf[0], that frame (drop then equals its
// length). When it returns drop > 0 with no frame, err says why the bytes
// were dropped: ErrFraming (garbage before a preamble), ErrLength (a length
// field out of range) or ErrChecksum. drop == 0 with no frame means buf
// holds at most the start of a frame: read more. Split never drops the
// start of a possible preamble at the end of buf.
func Split(buf []byte) (drop int, frame []byte, err error) {
	i := bytes.Index(buf, Preamble[:])
	if i < 0 {
		keep := partialPreamble(buf)
		if d := len(buf) - keep; d > 0 {
			return d, nil, ErrFraming
		}
		return 0, nil, nil
	}
	if i > 0 {
		return i, nil, ErrFraming
	}
	if len(buf) < headerLen {
		return 0, nil, nil
	}
	n := int(buf[5])<<8 | int(buf[6])
	if n < minRespLen || n > MaxLen {
		return 1, nil, ErrLength
	}
	if len(buf) < headerLen+n {
		return 0, nil, nil
	}
	f := buf[:headerLen+n]
	if checksum(f[5:len(f)-1]) != f[len(f)-1] {
		return 1, nil, ErrChecksum
	}
	return len(f), f, nil
}

// partialPreamble returns the length of the longest suffix of b that is a
// proper prefix of the preamble.
func partialPreamble(b []byte) int {
	for k := min(len(Preamble)-1, len(b)); k > 0; k-- {
		if bytes.Equal(b[len(b)-k:], Preamble[:k]) {
			return k
		}
	}
	return 0
}
