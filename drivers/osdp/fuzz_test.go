package osdp

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode never panics, and a packet it accepts re-encodes to
// the same bytes (when the reserved CTRL bits are clear). The Framer fed
// the same bytes with noise around them never panics either.
func FuzzDecode(f *testing.F) {
	for _, v := range vec.Packets {
		f.Add([]byte(v.Hex))
	}
	for _, v := range vec.Malformed {
		f.Add([]byte(v.Hex))
	}
	for _, s := range vec.Secure {
		for _, m := range s.Messages {
			f.Add([]byte(m.Hex))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err == nil && b[4]&0xF0 == 0 {
			again, err := Encode(p)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("Decode(%x) = %+v re-encodes to %x, %v", b, p, again, err)
			}
		}
		var fr Framer
		fr.Write([]byte{0x53, 0x00})
		fr.Write(b)
		fr.Write(b)
		for range 2 * len(b) {
			if _, _, _, _, ok := fr.Next(); !ok {
				break
			}
		}
	})
}

// FuzzOpenReply: secure reply parsing (MAC check, decryption, padding)
// never panics on any bytes, whatever the chain state.
func FuzzOpenReply(f *testing.F) {
	for _, s := range vec.Secure {
		for _, m := range s.Messages {
			if m.Dir == "reply" {
				f.Add([]byte(m.Hex))
			}
		}
	}
	v := vec.Secure[1]
	k := DeriveSessionKeys(key16(v.SCBK), key8(v.RndA))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		s := NewSession(k, key16(v.RMACI))
		if _, err := s.SealCommand(Packet{Addr: v.Addr, Seq: 3, CRC: true, Code: CmdPOLL}); err != nil {
			t.Fatal(err)
		}
		if open, err := s.OpenReply(b, p); err == nil && p.SCBType() == SCS18 && len(open.Data) >= len(p.Data) {
			t.Fatalf("decrypted data not shorter than its padded form")
		}
		_, _ = DecryptData(k, [16]byte{}, p.Data) // only checking for panics
	})
}
