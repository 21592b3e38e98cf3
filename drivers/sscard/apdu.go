package sscard

import (
	"fmt"
)

// Command is a short ISO 7816-4 command APDU (sscard.md §2.1).
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte // Lc is len(Data); at most 255 bytes
	// Le is the expected response length: -1 for none, 0 for "up to 256"
	// (encoded 00), 1..255 as is.
	Le int
}

// Bytes encodes the command (case 1 to 4 short APDU). Data longer than 255
// bytes or Le outside -1..255 is a programming error and panics.
func (c Command) Bytes() []byte {
	if len(c.Data) > 255 || c.Le < -1 || c.Le > 255 {
		panic(fmt.Sprintf("sscard: APDU out of range: %d data bytes, Le %d", len(c.Data), c.Le))
	}
	b := []byte{c.CLA, c.INS, c.P1, c.P2}
	if len(c.Data) > 0 {
		b = append(b, byte(len(c.Data)))
		b = append(b, c.Data...)
	}
	if c.Le >= 0 {
		b = append(b, byte(c.Le))
	}
	return b
}

// SSSEAID is the social security application's AID, "sx1.sh.社会保障" in
// GBK (sscard.md §2.4).
var SSSEAID = []byte{0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF}

// File identifiers of the two files read (sscard.md §2.4).
const (
	FileIssuer = 0xEF05
	FileHolder = 0xEF06
)

// SelectAID builds SELECT by AID: 00 A4 04 00 Lc AID.
func SelectAID(aid []byte) Command {
	return Command{INS: 0xA4, P1: 0x04, Data: aid, Le: -1}
}

// SelectFile builds SELECT by file id under the current DF: 00 A4 02 00 02 FID.
func SelectFile(fid uint16) Command {
	return Command{INS: 0xA4, P1: 0x02, Data: []byte{byte(fid >> 8), byte(fid)}, Le: -1}
}

// ReadRecord builds READ RECORD of record rec of the current EF: 00 B2 rec 04 Le.
func ReadRecord(rec byte, le int) Command {
	return Command{INS: 0xB2, P1: rec, P2: 0x04, Le: le}
}

// GetResponse builds GET RESPONSE for n bytes (n from a 61xx; 0 means 256).
func GetResponse(n byte) Command {
	return Command{INS: 0xC0, Le: int(n)}
}

// ParseResponse splits a response APDU into its data and status word. A
// response shorter than 2 bytes is ErrMalformed. data aliases b.
func ParseResponse(b []byte) (data []byte, sw uint16, err error) {
	if len(b) < 2 {
		return nil, 0, fmt.Errorf("%w: response APDU of %d bytes", ErrMalformed, len(b))
	}
	n := len(b) - 2
	return b[:n], uint16(b[n])<<8 | uint16(b[n+1]), nil
}
