package osdpsim

// Framing from the PD's side (osdp.md §2).

func crc16(b []byte) uint16 {
	var crc uint16 = 0x1D0F
	for _, c := range b {
		for i := 7; i >= 0; i-- {
			bit := (c>>uint(i))&1 == 1
			top := crc&0x8000 != 0
			crc <<= 1
			if top != bit {
				crc ^= 0x1021
			}
		}
	}
	return crc
}

func sum8(b []byte) byte {
	var s int
	for _, c := range b {
		s += int(c)
	}
	return byte(256 - s%256)
}

// frame is a received command.
type frame struct {
	raw      []byte // whole packet
	addr     byte
	seq      byte
	useCRC   bool
	scbType  byte
	scbData  []byte
	code     byte
	data     []byte
	mac      []byte
	macInput []byte // the bytes the MAC covers
}

// parseFrame cuts one frame off the front of buf. It returns the frame
// (nil when none), how many bytes to drop, and whether more bytes are
// needed to decide.
func parseFrame(buf []byte) (f *frame, drop int, needMore bool) {
	start := -1
	for i, c := range buf {
		if c == 0x53 {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, len(buf), false
	}
	b := buf[start:]
	if len(b) < 5 {
		return nil, start, true
	}
	n := int(b[2]) + int(b[3])<<8
	if n < 7 || n > 1440 {
		return nil, start + 1, false
	}
	if len(b) < n {
		return nil, start, true
	}
	p := b[:n]
	ctrl := p[4]
	f = &frame{raw: append([]byte{}, p...), addr: p[1], seq: ctrl & 3, useCRC: ctrl&4 != 0}
	body := n - 1
	if f.useCRC {
		body = n - 2
		if uint16(p[n-2])|uint16(p[n-1])<<8 != crc16(p[:body]) {
			return nil, start + 1, false
		}
	} else if sum8(p[:body]) != p[body] {
		return nil, start + 1, false
	}
	i := 5
	if ctrl&8 != 0 {
		l := int(p[5])
		if l < 2 || 5+l >= body {
			return nil, start + 1, false
		}
		f.scbType, f.scbData = p[6], append([]byte{}, p[7:5+l]...)
		i = 5 + l
	}
	if f.scbType >= 0x15 && f.scbType <= 0x18 {
		if body-4 <= i {
			return nil, start + 1, false
		}
		f.mac = append([]byte{}, p[body-4:body]...)
		f.macInput = append([]byte{}, p[:body-4]...)
		body -= 4
	}
	f.code = p[i]
	f.data = append([]byte{}, p[i+1:body]...)
	return f, start + n, false
}

// buildReply encodes a reply. scb is nil or type+data; macFn, when set,
// computes the 4 MAC bytes from everything before them.
func buildReply(addr, seq byte, useCRC bool, scb []byte, code byte, data []byte, macFn func([]byte) []byte) []byte {
	ctrl := seq & 3
	if useCRC {
		ctrl |= 4
	}
	if scb != nil {
		ctrl |= 8
	}
	n := 5 + 1 + len(data) + 1
	if scb != nil {
		n += 1 + len(scb)
	}
	if macFn != nil {
		n += 4
	}
	if useCRC {
		n++
	}
	out := []byte{0x53, addr | 0x80, byte(n), byte(n >> 8), ctrl}
	if scb != nil {
		out = append(out, byte(len(scb)+1))
		out = append(out, scb...)
	}
	out = append(out, code)
	out = append(out, data...)
	if macFn != nil {
		out = append(out, macFn(out)[:4]...)
	}
	if useCRC {
		c := crc16(out)
		return append(out, byte(c), byte(c>>8))
	}
	return append(out, sum8(out))
}
