package osdp

import (
	"encoding/binary"
	"fmt"
)

// Command codes (CP→PD) implemented by the control panel (osdp.md §4.1).
const (
	CmdPOLL   = 0x60
	CmdID     = 0x61
	CmdCAP    = 0x62
	CmdLSTAT  = 0x64
	CmdLED    = 0x69
	CmdBUZ    = 0x6A
	CmdTEXT   = 0x6B
	CmdKEYSET = 0x75
	CmdCHLNG  = 0x76
	CmdSCRYPT = 0x77
)

// Reply codes (PD→CP) understood by the control panel (osdp.md §4.2).
const (
	ReplyACK    = 0x40
	ReplyNAK    = 0x41
	ReplyPDID   = 0x45
	ReplyPDCAP  = 0x46
	ReplyLSTATR = 0x48
	ReplyRAW    = 0x50
	ReplyFMT    = 0x51
	ReplyKEYPAD = 0x53
	ReplyCCRYPT = 0x76
	ReplyRMACI  = 0x78
	ReplyBUSY   = 0x79
)

// Identity is the decoded osdp_PDID reply.
type Identity struct {
	Vendor   [3]byte
	Model    byte
	Version  byte
	Serial   uint32
	Firmware [3]byte // major, minor, build
}

// ParseIdentity decodes osdp_PDID data (12 bytes; longer is tolerated, see
// osdp.md §8). Shorter data is ErrBadReply.
func ParseIdentity(d []byte) (Identity, error) {
	var id Identity
	if len(d) < 12 {
		return id, fmt.Errorf("%w: PDID of %d bytes", ErrBadReply, len(d))
	}
	copy(id.Vendor[:], d[0:3])
	id.Model, id.Version = d[3], d[4]
	id.Serial = binary.LittleEndian.Uint32(d[5:9])
	copy(id.Firmware[:], d[9:12])
	return id, nil
}

// CUID is the client UID used for SCBK diversification: vendor, model,
// version and the serial number little-endian (osdp.md §6.1).
func (id Identity) CUID() [8]byte {
	var c [8]byte
	copy(c[:3], id.Vendor[:])
	c[3] = id.Model
	binary.LittleEndian.PutUint32(c[4:], id.Serial)
	return c
}

// Capability is one osdp_PDCAP record.
type Capability struct {
	Function   byte
	Compliance byte
	Count      byte
}

// Capability function codes used by the control panel.
const (
	CapLED          = 4
	CapAudible      = 5
	CapText         = 6
	CapCheckCRC     = 8
	CapCommSecurity = 9
)

// ParseCapabilities decodes osdp_PDCAP data; a length not a multiple of 3
// is ErrBadReply.
func ParseCapabilities(d []byte) ([]Capability, error) {
	if len(d)%3 != 0 {
		return nil, fmt.Errorf("%w: PDCAP of %d bytes", ErrBadReply, len(d))
	}
	caps := make([]Capability, 0, len(d)/3)
	for i := 0; i < len(d); i += 3 {
		caps = append(caps, Capability{d[i], d[i+1], d[i+2]})
	}
	return caps, nil
}

// RawCard is a decoded osdp_RAW reply: bit data MSB first.
type RawCard struct {
	Reader byte
	Format byte // 0 unspecified, 1 Wiegand
	Bits   int
	Data   []byte
}

// ParseRaw decodes osdp_RAW data; a bit count that does not fit the data is
// ErrBadReply.
func ParseRaw(d []byte) (RawCard, error) {
	if len(d) < 4 {
		return RawCard{}, fmt.Errorf("%w: RAW of %d bytes", ErrBadReply, len(d))
	}
	bits := int(binary.LittleEndian.Uint16(d[2:4]))
	if bits == 0 || (bits+7)/8 != len(d)-4 {
		return RawCard{}, fmt.Errorf("%w: RAW %d bits in %d bytes", ErrBadReply, bits, len(d)-4)
	}
	return RawCard{Reader: d[0], Format: d[1], Bits: bits, Data: append([]byte(nil), d[4:]...)}, nil
}

// FormattedCard is a decoded osdp_FMT reply: the card number as ASCII.
type FormattedCard struct {
	Reader    byte
	Direction byte
	Text      string
}

// ParseFormatted decodes osdp_FMT data; a count that disagrees with the
// data length or a non-printable character is ErrBadReply.
func ParseFormatted(d []byte) (FormattedCard, error) {
	if len(d) < 3 || int(d[2]) != len(d)-3 || d[2] == 0 {
		return FormattedCard{}, fmt.Errorf("%w: FMT of %d bytes", ErrBadReply, len(d))
	}
	for _, c := range d[3:] {
		if c < 0x20 || c > 0x7E {
			return FormattedCard{}, fmt.Errorf("%w: FMT character %#02x", ErrBadReply, c)
		}
	}
	return FormattedCard{Reader: d[0], Direction: d[1], Text: string(d[3:])}, nil
}

// Keypad is a decoded osdp_KEYPAD reply. Keys are ASCII digits, with '*'
// sent as 0x7F and '#' as 0x0D on the wire (osdp.md §4.2) and mapped back.
type Keypad struct {
	Reader byte
	Keys   string
}

// ParseKeypad decodes osdp_KEYPAD data; a count that disagrees with the
// data length is ErrBadReply.
func ParseKeypad(d []byte) (Keypad, error) {
	if len(d) < 2 || int(d[1]) != len(d)-2 {
		return Keypad{}, fmt.Errorf("%w: KEYPAD of %d bytes", ErrBadReply, len(d))
	}
	keys := make([]byte, 0, d[1])
	for _, c := range d[2:] {
		switch {
		case c == 0x7F:
			keys = append(keys, '*')
		case c == 0x0D:
			keys = append(keys, '#')
		case c >= '0' && c <= '9', c == '*', c == '#':
			keys = append(keys, c)
		default:
			return Keypad{}, fmt.Errorf("%w: key %#02x", ErrBadReply, c)
		}
	}
	return Keypad{Reader: d[0], Keys: string(keys)}, nil
}

// LocalStatus is a decoded osdp_LSTATR reply.
type LocalStatus struct {
	Tamper bool
	Power  bool // true: power failure
}

// ParseLocalStatus decodes osdp_LSTATR data (2 bytes, else ErrBadReply).
func ParseLocalStatus(d []byte) (LocalStatus, error) {
	if len(d) < 2 {
		return LocalStatus{}, fmt.Errorf("%w: LSTATR of %d bytes", ErrBadReply, len(d))
	}
	return LocalStatus{Tamper: d[0] != 0, Power: d[1] != 0}, nil
}

// LED colours (osdp.md §4.1).
const (
	Black = 0
	Red   = 1
	Green = 2
	Amber = 3
	Blue  = 4
)

// LEDCommand is one osdp_LED record. Times are in units of 100 ms.
// A zero Temporary (TempTimer 0) leaves the temporary state alone
// (control code 0); Permanent is always set (control code 1).
type LEDCommand struct {
	Reader, LED byte
	// Temporary blink: on/off time and colours, for TempTimer×100 ms.
	TempOn, TempOff           byte
	TempOnColor, TempOffColor byte
	TempTimer                 uint16
	// Permanent state after the temporary one ends.
	PermOn, PermOff           byte
	PermOnColor, PermOffColor byte
}

// Encode returns the 14-byte record.
func (l LEDCommand) Encode() []byte {
	tempCode := byte(0)
	if l.TempTimer > 0 {
		tempCode = 2 // set temporary state and start the timer
	}
	return []byte{l.Reader, l.LED,
		tempCode, l.TempOn, l.TempOff, l.TempOnColor, l.TempOffColor, byte(l.TempTimer), byte(l.TempTimer >> 8),
		1, l.PermOn, l.PermOff, l.PermOnColor, l.PermOffColor}
}

// BuzzerCommand is an osdp_BUZ record: Tone 0/1 off, 2 default tone; times
// in 100 ms; Count 0 repeats until changed.
type BuzzerCommand struct {
	Reader, Tone, On, Off, Count byte
}

// Encode returns the 5-byte record.
func (b BuzzerCommand) Encode() []byte { return []byte{b.Reader, b.Tone, b.On, b.Off, b.Count} }

// TextCommand is an osdp_TEXT record. Command 1/2 permanent (no wrap /
// wrap), 3/4 temporary for Seconds.
type TextCommand struct {
	Reader, Command, Seconds, Row, Column byte
	Text                                  string // printable ASCII, at most 255 bytes
}

// Encode returns the record; text beyond 255 bytes is cut.
func (t TextCommand) Encode() []byte {
	s := t.Text
	if len(s) > 255 {
		s = s[:255]
	}
	return append([]byte{t.Reader, t.Command, t.Seconds, t.Row, t.Column, byte(len(s))}, s...)
}

// KeysetData is the osdp_KEYSET payload for an SCBK: type 1, length 16, key.
func KeysetData(key [16]byte) []byte { return append([]byte{0x01, 16}, key[:]...) }
