package osdp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
)

// DefaultSCBK is SCBK-D, the install-mode key every PD accepts while in
// install mode (osdp.md §6.1): the bytes 0x30 to 0x3F.
var DefaultSCBK = [16]byte{0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F}

// SessionKeys are the per-session keys derived from the SCBK and RND.A.
type SessionKeys struct {
	Enc, MAC1, MAC2 [16]byte
}

func ecb(key, in []byte) [16]byte {
	c, err := aes.NewCipher(key)
	if err != nil {
		panic("osdp: AES key must be 16 bytes") // callers pass [16]byte slices
	}
	var out [16]byte
	c.Encrypt(out[:], in)
	return out
}

// DeriveSCBK diversifies a master key into one PD's SCBK:
// AES(master, cUID ‖ ^cUID) (osdp.md §6.1).
func DeriveSCBK(master [16]byte, cUID [8]byte) [16]byte {
	var in [16]byte
	copy(in[:], cUID[:])
	for i := range 8 {
		in[8+i] = ^cUID[i]
	}
	return ecb(master[:], in[:])
}

// DeriveSessionKeys computes S-ENC, S-MAC1 and S-MAC2 as AES(SCBK, 01 xx
// RND.A[0:6] 00…) with xx = 0x82, 0x01, 0x02 (osdp.md §6.3).
func DeriveSessionKeys(scbk [16]byte, rndA [8]byte) SessionKeys {
	k := func(b byte) [16]byte {
		var in [16]byte
		in[0], in[1] = 0x01, b
		copy(in[2:8], rndA[:6])
		return ecb(scbk[:], in[:])
	}
	return SessionKeys{Enc: k(0x82), MAC1: k(0x01), MAC2: k(0x02)}
}

// ClientCryptogram is the PD's proof of the key: AES(S-ENC, RND.A ‖ RND.B).
func ClientCryptogram(k SessionKeys, rndA, rndB [8]byte) [16]byte {
	return ecb(k.Enc[:], append(rndA[:], rndB[:]...))
}

// ServerCryptogram is the CP's proof of the key: AES(S-ENC, RND.B ‖ RND.A).
func ServerCryptogram(k SessionKeys, rndA, rndB [8]byte) [16]byte {
	return ecb(k.Enc[:], append(rndB[:], rndA[:]...))
}

// InitialRMAC is AES(S-MAC2, AES(S-MAC1, server cryptogram)), the first
// MAC chaining value.
func InitialRMAC(k SessionKeys, serverCryptogram [16]byte) [16]byte {
	x := ecb(k.MAC1[:], serverCryptogram[:])
	return ecb(k.MAC2[:], x[:])
}

// ComputeMAC is the OSDP CBC-MAC of msg chained from iv: msg padded with
// 0x80 0x00… when not a multiple of 16, every block but the last through
// AES-CBC under S-MAC1, the last under S-MAC2 (osdp.md §6.4). The first 4
// bytes go on the wire; all 16 chain to the next message.
func ComputeMAC(k SessionKeys, iv [16]byte, msg []byte) [16]byte {
	buf := append([]byte(nil), msg...)
	if len(buf)%16 != 0 || len(buf) == 0 {
		buf = pad(buf)
	}
	if len(buf) > 16 {
		c, _ := aes.NewCipher(k.MAC1[:]) // 16-byte key: cannot fail
		head := buf[:len(buf)-16]
		cipher.NewCBCEncrypter(c, iv[:]).CryptBlocks(head, head)
		copy(iv[:], head[len(head)-16:])
	}
	c, _ := aes.NewCipher(k.MAC2[:]) // 16-byte key: cannot fail
	var out [16]byte
	cipher.NewCBCEncrypter(c, iv[:]).CryptBlocks(out[:], buf[len(buf)-16:])
	return out
}

func pad(b []byte) []byte {
	b = append(b, 0x80)
	for len(b)%16 != 0 {
		b = append(b, 0)
	}
	return b
}

func invert(b [16]byte) [16]byte {
	for i := range b {
		b[i] = ^b[i]
	}
	return b
}

// EncryptData encrypts data for SCS_17/18: always padded with 0x80 0x00…,
// AES-CBC under S-ENC with IV = ^lastMAC (the last MAC received by the
// sender: R-MAC for a command, C-MAC for a reply) (osdp.md §6.5).
func EncryptData(k SessionKeys, lastMAC [16]byte, data []byte) []byte {
	buf := pad(append([]byte(nil), data...))
	c, _ := aes.NewCipher(k.Enc[:]) // 16-byte key: cannot fail
	iv := invert(lastMAC)
	cipher.NewCBCEncrypter(c, iv[:]).CryptBlocks(buf, buf)
	return buf
}

// DecryptData reverses EncryptData. It fails with ErrBadPadding when the
// length is not a positive multiple of 16 or the 0x80 end marker is
// missing (a wrong key or IV shows up here).
func DecryptData(k SessionKeys, lastMAC [16]byte, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data)%16 != 0 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadPadding, len(data))
	}
	buf := append([]byte(nil), data...)
	c, _ := aes.NewCipher(k.Enc[:]) // 16-byte key: cannot fail
	iv := invert(lastMAC)
	cipher.NewCBCDecrypter(c, iv[:]).CryptBlocks(buf, buf)
	i := len(buf) - 1
	for i > len(buf)-16 && buf[i] == 0 {
		i--
	}
	if buf[i] != 0x80 {
		return nil, ErrBadPadding
	}
	return buf[:i], nil
}

// Session is the CP side of one established secure channel: the session
// keys and the MAC chain. It is not safe for concurrent use; the polling
// loop owns it.
type Session struct {
	Keys SessionKeys
	cmac [16]byte // MAC of the last command sent
	rmac [16]byte // MAC of the last reply received (RMAC_I at first)
}

// NewSession starts the MAC chain of an established channel from RMAC_I.
func NewSession(k SessionKeys, rmacI [16]byte) *Session {
	return &Session{Keys: k, rmac: rmacI}
}

// SealCommand encodes a command under the channel: SCS_17 with encrypted
// data when p.Data is not empty, SCS_15 otherwise, followed by the MAC. It
// advances the C-MAC. Errors are Encode's.
func (s *Session) SealCommand(p Packet) ([]byte, error) {
	p.SCB = []byte{2, SCS15}
	if len(p.Data) > 0 {
		p.SCB[1] = SCS17
		p.Data = EncryptData(s.Keys, s.rmac, p.Data)
	}
	head, err := encodeHead(p, macLen)
	if err != nil {
		return nil, err
	}
	s.cmac = ComputeMAC(s.Keys, s.rmac, head)
	return appendTrailer(append(head, s.cmac[:macLen]...), p.CRC), nil
}

// OpenReply verifies the MAC of a decoded reply (raw is its whole wire
// form) against the chain, advances the R-MAC, and returns the packet with
// its data decrypted. A reply without SCS_16/18 fails with ErrNotSecure
// (the caller decides whether a plaintext NAK is acceptable); a MAC
// mismatch with ErrBadMAC, a bad decryption with ErrBadPadding. On error
// the chain is unchanged.
func (s *Session) OpenReply(raw []byte, p Packet) (Packet, error) {
	t := p.SCBType()
	if t != SCS16 && t != SCS18 {
		return p, ErrNotSecure
	}
	trailer := 1
	if p.CRC {
		trailer = crcTrailerLen
	}
	if len(raw) < headerLen+macLen+trailer {
		return p, ErrTruncated
	}
	mac := ComputeMAC(s.Keys, s.cmac, raw[:len(raw)-macLen-trailer])
	if subtle.ConstantTimeCompare(mac[:macLen], p.MAC) != 1 {
		return p, ErrBadMAC
	}
	if t == SCS18 {
		d, err := DecryptData(s.Keys, s.cmac, p.Data)
		if err != nil {
			return p, err
		}
		p.Data = d
	} else if len(p.Data) != 0 {
		return p, fmt.Errorf("%w: data under SCS_16", ErrBadSCB)
	}
	s.rmac = mac
	return p, nil
}
