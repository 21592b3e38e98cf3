package escpos

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// ErrEncode: a value cannot be encoded (QR data empty or too long, a module
// size or line count out of range, text GB18030 cannot represent).
var ErrEncode = errors.New("escpos: cannot encode")

// Command bytes (firmware-specs/escpos.md §2).
const (
	LF  = 0x0A
	ESC = 0x1B
	FS  = 0x1C
	GS  = 0x1D
	DLE = 0x10
	EOT = 0x04
)

// Alignment is ESC a's argument.
type Alignment byte

// Alignments.
const (
	Left   Alignment = 0
	Center Alignment = 1
	Right  Alignment = 2
)

// ECLevel is a QR code's error-correction level (GS ( k fn 69).
type ECLevel byte

// Error-correction levels; the zero value means M.
const (
	ECDefault ECLevel = 0
	ECL       ECLevel = 48
	ECM       ECLevel = 49
	ECQ       ECLevel = 50
	ECH       ECLevel = 51
)

// Initialize is ESC @: clears the buffer and resets every mode.
func Initialize() []byte { return []byte{ESC, '@'} }

// ChineseMode is FS & (on) or FS . (off): in Chinese mode text bytes are
// GB18030 (§3).
func ChineseMode(on bool) []byte {
	if on {
		return []byte{FS, '&'}
	}
	return []byte{FS, '.'}
}

// Bold is ESC E n.
func Bold(on bool) []byte { return []byte{ESC, 'E', b2n(on)} }

// Size is GS ! n with width and height multipliers of 1 or 2.
func Size(doubleWidth, doubleHeight bool) []byte {
	var n byte
	if doubleWidth {
		n |= 0x10
	}
	if doubleHeight {
		n |= 0x01
	}
	return []byte{GS, '!', n}
}

// Align is ESC a n.
func Align(a Alignment) []byte { return []byte{ESC, 'a', byte(a)} }

// FeedLines is ESC d n: print the buffer and feed n lines (0–255).
func FeedLines(n uint8) []byte { return []byte{ESC, 'd', n} }

// Cut is GS V 0 (full) or GS V 1 (partial, one point left uncut).
func Cut(partial bool) []byte { return []byte{GS, 'V', b2n(partial)} }

// StatusQuery is DLE EOT n (n = 1 printer, 2 offline cause, 3 error cause,
// 4 paper roll sensor), answered by one status byte in real time (§5).
func StatusQuery(n byte) []byte { return []byte{DLE, EOT, n} }

// Text encodes s in GB18030 (ASCII is unchanged), replacing every control
// character (below U+0020, U+007F) by '?' so text can never inject a
// command. It returns an error wrapping ErrEncode for invalid UTF-8.
func Text(s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: text is not valid UTF-8", ErrEncode)
	}
	clean := make([]rune, 0, len(s))
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			r = '?'
		}
		clean = append(clean, r)
	}
	b, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(string(clean)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEncode, err)
	}
	return b, nil
}

// MaxQRData is the longest QR payload accepted (model 2, byte mode, level L
// holds 2953 bytes).
const MaxQRData = 2953

// QRCode is the GS ( k sequence that prints data as a model 2 QR code:
// select model (fn 65), module size (fn 67, 1–16, 0 means 6), error
// correction (fn 69), store (fn 80), print (fn 81). It returns an error
// wrapping ErrEncode for empty or too long data or a size over 16.
func QRCode(data []byte, module uint8, ec ECLevel) ([]byte, error) {
	if len(data) == 0 || len(data) > MaxQRData {
		return nil, fmt.Errorf("%w: QR data of %d bytes", ErrEncode, len(data))
	}
	if module == 0 {
		module = 6
	}
	if module > 16 {
		return nil, fmt.Errorf("%w: QR module size %d", ErrEncode, module)
	}
	if ec == ECDefault {
		ec = ECM
	}
	if ec < ECL || ec > ECH {
		return nil, fmt.Errorf("%w: QR error correction %d", ErrEncode, ec)
	}
	out := []byte{
		GS, '(', 'k', 4, 0, 49, 65, 50, 0, // model 2
		GS, '(', 'k', 3, 0, 49, 67, module,
		GS, '(', 'k', 3, 0, 49, 69, byte(ec),
	}
	n := len(data) + 3
	out = append(out, GS, '(', 'k', byte(n), byte(n>>8), 49, 80, 48)
	out = append(out, data...)
	out = append(out, GS, '(', 'k', 3, 0, 49, 81, 48)
	return out, nil
}

func b2n(b bool) byte {
	if b {
		return 1
	}
	return 0
}
