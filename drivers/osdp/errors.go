package osdp

import (
	"errors"
	"fmt"
)

// Decoding errors (osdp.md §2). Each is a sentinel callers test with
// errors.Is; Decode wraps them with detail.
var (
	ErrTruncated   = errors.New("osdp: truncated packet")
	ErrBadSOM      = errors.New("osdp: bad start of message")
	ErrBadLength   = errors.New("osdp: bad length")
	ErrBadCRC      = errors.New("osdp: bad CRC")
	ErrBadChecksum = errors.New("osdp: bad checksum")
	ErrBadSCB      = errors.New("osdp: bad security control block")
	ErrBadReply    = errors.New("osdp: malformed reply data")
)

// Secure channel errors (osdp.md §6).
var (
	ErrBadMAC        = errors.New("osdp: bad MAC")
	ErrBadPadding    = errors.New("osdp: bad encryption padding")
	ErrBadCryptogram = errors.New("osdp: client cryptogram does not verify (wrong key)")
	ErrSecureRefused = errors.New("osdp: secure channel refused")
	ErrNotSecure     = errors.New("osdp: reply not protected by the secure channel")
)

// Control panel errors.
var (
	ErrTimeout       = errors.New("osdp: no reply")
	ErrUnexpected    = errors.New("osdp: unexpected reply")
	ErrUnknownReader = errors.New("osdp: unknown reader address")
	ErrQueueFull     = errors.New("osdp: command queue full")
	ErrClosed        = errors.New("osdp: closed")
	ErrBusy          = errors.New("osdp: reader busy")
)

// NAK codes carried by osdp_NAK (osdp.md §4.3).
const (
	NAKCheck       = 0x01 // message check character (CRC/checksum) error
	NAKLength      = 0x02 // command length error
	NAKUnknown     = 0x03 // unknown command code
	NAKSequence    = 0x04 // unexpected sequence number
	NAKSecureBlock = 0x05 // unsupported security block or security conditions not met
	NAKEncryption  = 0x06 // encrypted communication required
	NAKBioType     = 0x07
	NAKBioFormat   = 0x08
	NAKRecord      = 0x09 // unable to process command record
)

// NAKError is a command the reader refused with osdp_NAK. Code is the NAK
// error code; Command the command that was refused.
type NAKError struct {
	Addr    byte
	Command byte
	Code    byte
	Data    []byte // any bytes after the code
}

var nakNames = map[byte]string{
	NAKCheck: "check character error", NAKLength: "length error", NAKUnknown: "unknown command",
	NAKSequence: "unexpected sequence number", NAKSecureBlock: "security block or condition",
	NAKEncryption: "encryption required", NAKBioType: "bio type", NAKBioFormat: "bio format",
	NAKRecord: "unable to process record",
}

// Error formats as "osdp: reader 0x01 NAK 0x03 (unknown command) for command 0x6b".
func (e *NAKError) Error() string {
	name := nakNames[e.Code]
	if name == "" {
		name = "unknown code"
	}
	return fmt.Sprintf("osdp: reader %#02x NAK %#02x (%s) for command %#02x", e.Addr, e.Code, name, e.Command)
}

// IsNAK reports whether err holds a *NAKError and returns its code.
func IsNAK(err error) (code byte, ok bool) {
	var n *NAKError
	if errors.As(err, &n) {
		return n.Code, true
	}
	return 0, false
}
