package osdp

import (
	"encoding/binary"
	"fmt"
)

// Framing constants (osdp.md §2).
const (
	SOM           = 0x53
	ReplyBit      = 0x80 // set in ADDR on every PD reply
	Broadcast     = 0x7F // configuration address
	ctrlSQN       = 0x03
	ctrlCRC       = 0x04
	ctrlSCB       = 0x08
	headerLen     = 5
	MaxPacketLen  = 1440 // the largest LEN accepted; longer is ErrBadLength
	minPacketLen  = headerLen + 1 + 1
	macLen        = 4
	crcTrailerLen = 2
)

// Security block types (osdp.md §6.2).
const (
	SCS11 = 0x11 // CP→PD osdp_CHLNG
	SCS12 = 0x12 // PD→CP osdp_CCRYPT
	SCS13 = 0x13 // CP→PD osdp_SCRYPT
	SCS14 = 0x14 // PD→CP osdp_RMAC_I
	SCS15 = 0x15 // CP→PD MAC, data plain (no data)
	SCS16 = 0x16 // PD→CP MAC, data plain (no data)
	SCS17 = 0x17 // CP→PD MAC, data encrypted
	SCS18 = 0x18 // PD→CP MAC, data encrypted
)

// Packet is one decoded OSDP message, command or reply.
type Packet struct {
	Addr  byte // 0x00–0x7F, without the reply bit
	Reply bool // the reply bit was set (PD→CP)
	Seq   byte // 0–3
	CRC   bool // CRC-16 trailer (true) or 8-bit checksum
	// SCB is the whole security control block (length, type, data), nil
	// when absent.
	SCB  []byte
	Code byte   // command or reply code
	Data []byte // data as on the wire (encrypted under SCS_17/18)
	MAC  []byte // the 4 MAC bytes under SCS_15–18, nil otherwise
}

// SCBType returns the security block type, 0 when there is no SCB.
func (p *Packet) SCBType() byte {
	if len(p.SCB) < 2 {
		return 0
	}
	return p.SCB[1]
}

func hasMAC(scbType byte) bool { return scbType >= SCS15 && scbType <= SCS18 }

// CRC16 is the CRC-16/AUG-CCITT of b (poly 0x1021, init 0x1D0F, no
// reflection, no final XOR), sent little-endian (osdp.md §2.3).
func CRC16(b []byte) uint16 {
	crc := uint16(0x1D0F)
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Checksum is the 8-bit two's complement of the sum of b: a packet whose
// bytes, checksum included, sum to 0 mod 256 is intact (osdp.md §2.3).
func Checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// Encode returns the wire bytes of p. LEN is computed; a MAC is written
// only when p.MAC is set (4 bytes). It fails with ErrBadSCB when the SCB
// is malformed or a MAC is given without a MAC-carrying SCB type, and with
// ErrBadLength when the packet would exceed MaxPacketLen.
func Encode(p Packet) ([]byte, error) {
	b, err := encodeHead(p, len(p.MAC))
	if err != nil {
		return nil, err
	}
	b = append(b, p.MAC...)
	return appendTrailer(b, p.CRC), nil
}

// encodeHead returns SOM through the data, with LEN counting macN MAC bytes
// and the trailer that will follow.
func encodeHead(p Packet, macN int) ([]byte, error) {
	if p.Addr > 0x7F || p.Seq > 3 {
		return nil, fmt.Errorf("%w: address %#x or sequence %d out of range", ErrBadLength, p.Addr, p.Seq)
	}
	if p.SCB != nil && (len(p.SCB) < 2 || int(p.SCB[0]) != len(p.SCB)) {
		return nil, ErrBadSCB
	}
	if macN != 0 && (macN != macLen || !hasMAC(p.SCBType())) {
		return nil, fmt.Errorf("%w: MAC without a MAC security block", ErrBadSCB)
	}
	trailer := 1
	if p.CRC {
		trailer = crcTrailerLen
	}
	n := headerLen + len(p.SCB) + 1 + len(p.Data) + macN + trailer
	if n > MaxPacketLen {
		return nil, ErrBadLength
	}
	ctrl := p.Seq & ctrlSQN
	if p.CRC {
		ctrl |= ctrlCRC
	}
	if p.SCB != nil {
		ctrl |= ctrlSCB
	}
	addr := p.Addr
	if p.Reply {
		addr |= ReplyBit
	}
	b := make([]byte, 0, n)
	b = append(b, SOM, addr, byte(n), byte(n>>8), ctrl)
	b = append(b, p.SCB...)
	b = append(b, p.Code)
	return append(b, p.Data...), nil
}

func appendTrailer(b []byte, crc bool) []byte {
	if crc {
		return binary.LittleEndian.AppendUint16(b, CRC16(b))
	}
	return append(b, Checksum(b))
}

// Decode parses exactly one whole packet. Errors (all wrapping a sentinel):
// ErrTruncated when b is shorter than its LEN (or than a header),
// ErrBadSOM when b does not start with 0x53, ErrBadLength when LEN is out
// of range or disagrees with len(b), ErrBadCRC / ErrBadChecksum on a bad
// trailer, ErrBadSCB when the security block overruns the packet. A MAC is
// split off but not verified (see Session).
func Decode(b []byte) (Packet, error) {
	var p Packet
	if len(b) < headerLen {
		return p, fmt.Errorf("%w: %d bytes", ErrTruncated, len(b))
	}
	if b[0] != SOM {
		return p, ErrBadSOM
	}
	n := int(binary.LittleEndian.Uint16(b[2:4]))
	if n < minPacketLen || n > MaxPacketLen {
		return p, fmt.Errorf("%w: LEN %d", ErrBadLength, n)
	}
	if len(b) < n {
		return p, fmt.Errorf("%w: %d of %d bytes", ErrTruncated, len(b), n)
	}
	if len(b) > n {
		return p, fmt.Errorf("%w: %d bytes for LEN %d", ErrBadLength, len(b), n)
	}
	ctrl := b[4]
	p.Addr, p.Reply = b[1]&^ReplyBit, b[1]&ReplyBit != 0
	p.Seq, p.CRC = ctrl&ctrlSQN, ctrl&ctrlCRC != 0
	end := n - 1
	if p.CRC {
		end = n - crcTrailerLen
		if n < minPacketLen+1 {
			return p, fmt.Errorf("%w: LEN %d", ErrBadLength, n)
		}
		if got, want := binary.LittleEndian.Uint16(b[end:]), CRC16(b[:end]); got != want {
			return p, fmt.Errorf("%w: got %#04x, want %#04x", ErrBadCRC, got, want)
		}
	} else if Checksum(b[:end]) != b[end] {
		return p, ErrBadChecksum
	}
	i := headerLen
	if ctrl&ctrlSCB != 0 {
		l := int(b[i])
		if l < 2 || i+l >= end {
			return p, fmt.Errorf("%w: length %d", ErrBadSCB, l)
		}
		p.SCB = append([]byte(nil), b[i:i+l]...)
		i += l
	}
	if hasMAC(p.SCBType()) {
		if end-macLen <= i {
			return p, fmt.Errorf("%w: no room for the MAC", ErrBadSCB)
		}
		p.MAC = append([]byte(nil), b[end-macLen:end]...)
		end -= macLen
	}
	p.Code = b[i]
	p.Data = append([]byte(nil), b[i+1:end]...)
	return p, nil
}

// Framer cuts a byte stream into packets: it skips bytes until a SOM,
// waits for LEN bytes, and drops a candidate that fails to decode by one
// byte so a SOM inside garbage cannot swallow the next good packet.
type Framer struct {
	buf []byte
}

// Write appends received bytes.
func (f *Framer) Write(b []byte) { f.buf = append(f.buf, b...) }

// Reset drops everything buffered.
func (f *Framer) Reset() { f.buf = f.buf[:0] }

// Buffered reports how many bytes wait for a packet to complete.
func (f *Framer) Buffered() int { return len(f.buf) }

// Next returns the next packet and its raw bytes. skipped counts the bytes
// thrown away before it. ok is false when more bytes are needed; err is the
// reason the last dropped candidate failed (nil when only noise without a
// SOM was skipped), reported once with the first packet or wait after it.
func (f *Framer) Next() (p Packet, raw []byte, skipped int, err error, ok bool) {
	for {
		i := 0
		for i < len(f.buf) && f.buf[i] != SOM {
			i++
		}
		skipped += i
		f.buf = f.buf[i:]
		if len(f.buf) < headerLen {
			f.compact()
			return p, nil, skipped, err, false
		}
		n := int(binary.LittleEndian.Uint16(f.buf[2:4]))
		if n < minPacketLen || n > MaxPacketLen {
			err = fmt.Errorf("%w: LEN %d", ErrBadLength, n)
			f.buf = f.buf[1:]
			skipped++
			continue
		}
		if len(f.buf) < n {
			// A garbage SOM with a plausible LEN would stall until the
			// reply timeout; a complete valid packet later in the buffer
			// proves the candidate truncated.
			if j := f.laterPacket(); j > 0 {
				err = fmt.Errorf("%w: resynchronised on a later packet", ErrTruncated)
				f.buf = f.buf[j:]
				skipped += j
				continue
			}
			f.compact()
			return p, nil, skipped, err, false
		}
		pkt, derr := Decode(f.buf[:n])
		if derr != nil {
			err = derr
			f.buf = f.buf[1:]
			skipped++
			continue
		}
		raw = append([]byte(nil), f.buf[:n]...)
		f.buf = f.buf[n:]
		f.compact()
		return pkt, raw, skipped, err, true
	}
}

// laterPacket returns the offset of the first complete, valid packet after
// position 0, or 0 when there is none.
func (f *Framer) laterPacket() int {
	for j := 1; j+headerLen <= len(f.buf); j++ {
		if f.buf[j] != SOM {
			continue
		}
		n := int(binary.LittleEndian.Uint16(f.buf[j+2 : j+4]))
		if n < minPacketLen || j+n > len(f.buf) {
			continue
		}
		if _, err := Decode(f.buf[j : j+n]); err == nil {
			return j
		}
	}
	return 0
}

func (f *Framer) compact() {
	if len(f.buf) == 0 {
		f.buf = f.buf[:0:0]
	}
}
