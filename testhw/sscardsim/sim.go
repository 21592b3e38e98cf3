package sscardsim

import (
	"bytes"
	"io"
	"sync"
)

// Fault is a one-shot fault applied to the next reply (sscard.md §4).
type Fault int

// Faults queued with Sim.Inject.
const (
	// Garbage: bytes that are not a frame (with a stray STX in them) are
	// sent before the reply.
	Garbage Fault = iota + 1
	// Truncated: the first half of the reply frame is sent before the whole
	// reply.
	Truncated
	// BadBCC: a copy of the reply with a wrong BCC is sent before the reply.
	BadBCC
	// Drop: the reply is not sent at all (one lost reply).
	Drop
)

// Stats counts what the simulator saw and did.
type Stats struct {
	Frames    int // valid frames received
	BadFrames int // frames received with a bad BCC (answered with status 05)
	APDUs     int // APDUs passed to the card
	Faults    int // one-shot faults applied
}

// Sim is a reader with a slot. Its methods are safe for concurrent use with
// Serve.
type Sim struct {
	mu       sync.Mutex
	card     *Card // nil: empty slot
	powered  bool
	df       int  // 0 MF, 1 SSSE selected
	ef       byte // 0x05, 0x06 or 0
	silent   bool
	t0       bool
	faults   []Fault
	removeIn int // >0: the card leaves when this many more APDUs have been answered
	stats    Stats
}

// New returns a reader with an empty slot.
func New() *Sim { return &Sim{} }

// Insert puts c in the slot (unpowered), replacing any card.
func (s *Sim) Insert(c *Card) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.card, s.powered, s.df, s.ef, s.removeIn = c, false, 0, 0, 0
}

// Remove empties the slot.
func (s *Sim) Remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.card, s.powered, s.removeIn = nil, false, 0
}

// RemoveAfter makes the card leave the slot after n more APDUs have been
// answered; the next APDU gets reader status 02 (card mute).
func (s *Sim) RemoveAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeIn = n
	if n <= 0 {
		s.card, s.powered = nil, false
	}
}

// SetSilent makes the reader read but not answer (true) or answer again.
func (s *Sim) SetSilent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = on
}

// SetT0 makes the card behave like a T=0 card behind a transparent reader:
// 61xx on a SELECT with response data, 6Cxx on READ RECORD with Le 00.
func (s *Sim) SetT0(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t0 = on
}

// Inject queues one-shot faults, applied to the next replies in order.
func (s *Sim) Inject(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Serve answers frames read from rw until a read fails (the pty was
// unplugged or closed), and returns that error. Run one Serve per device
// (per plug); the slot state survives across Serves.
func (s *Sim) Serve(rw io.ReadWriter) error {
	var buf []byte
	chunk := make([]byte, 512)
	for {
		n, err := rw.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			payload, rest, ok, bad := nextFrame(buf)
			buf = rest
			if bad {
				s.mu.Lock()
				s.stats.BadFrames++
				silent := s.silent
				s.mu.Unlock()
				if !silent {
					// Echo the CMD byte as received (sscard.md §1.3).
					if _, werr := rw.Write(frame([]byte{payload[0], 0x05})); werr != nil {
						return werr
					}
				}
				continue
			}
			if !ok {
				break
			}
			if werr := s.handle(rw, payload); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}

// nextFrame extracts the first complete frame from buf. ok is false when
// more bytes are needed; bad is true for a complete frame with a wrong BCC
// (it is consumed; payload is its unchecked payload). Bytes that cannot start a frame are skipped.
func nextFrame(buf []byte) (payload, rest []byte, ok, bad bool) {
	for {
		i := bytes.IndexByte(buf, 0x02)
		if i < 0 {
			return nil, buf[:0], false, false
		}
		buf = buf[i:]
		if len(buf) < 3 {
			return nil, buf, false, false
		}
		l := int(buf[1])<<8 | int(buf[2])
		if l < 1 || l > 512 {
			buf = buf[1:]
			continue
		}
		if len(buf) < l+5 {
			return nil, buf, false, false
		}
		if buf[l+4] != 0x03 {
			buf = buf[1:]
			continue
		}
		var x byte
		for _, c := range buf[1 : 3+l] {
			x ^= c
		}
		if x != buf[3+l] {
			return append([]byte(nil), buf[3:3+l]...), buf[l+5:], false, true
		}
		p := append([]byte(nil), buf[3:3+l]...)
		return p, buf[l+5:], true, false
	}
}

// frame encodes payload as STX LEN payload BCC ETX.
func frame(payload []byte) []byte {
	out := []byte{0x02, byte(len(payload) >> 8), byte(len(payload))}
	out = append(out, payload...)
	var x byte
	for _, c := range out[1:] {
		x ^= c
	}
	return append(out, x, 0x03)
}

func (s *Sim) handle(w io.Writer, p []byte) error {
	s.mu.Lock()
	s.stats.Frames++
	if s.silent {
		s.mu.Unlock()
		return nil
	}
	reply := s.answer(p[0], p[1:])
	out := frame(append([]byte{p[0]}, reply...))
	var pre []byte
	drop := false
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		s.stats.Faults++
		switch f {
		case Garbage:
			pre = []byte{0xFF, 0x55, 0x02, 0x01, 0xF0, 0xAA, 0x03}
		case Truncated:
			pre = append([]byte(nil), out[:len(out)/2]...)
		case BadBCC:
			pre = append([]byte(nil), out...)
			pre[len(pre)-2] ^= 0x5A
		case Drop:
			drop = true
		}
	}
	s.mu.Unlock()
	if drop {
		return nil
	}
	_, err := w.Write(append(pre, out...))
	return err
}

// answer returns STATUS | data for reader command cmd; s.mu is held.
func (s *Sim) answer(cmd byte, data []byte) []byte {
	switch cmd {
	case 0x11:
		switch {
		case s.card == nil:
			return []byte{0x00, 0x00}
		case s.powered:
			return []byte{0x00, 0x02}
		}
		return []byte{0x00, 0x01}
	case 0x12:
		if s.card == nil {
			return []byte{0x01}
		}
		s.powered, s.df, s.ef = true, 0, 0
		return append([]byte{0x00}, s.card.ATR...)
	case 0x13:
		s.powered = false
		return []byte{0x00}
	case 0x14:
		if s.card == nil {
			return []byte{0x02}
		}
		if !s.powered {
			return []byte{0x03}
		}
		if s.removeIn > 0 {
			s.removeIn--
			if s.removeIn == 0 {
				s.card, s.powered = nil, false
				return []byte{0x02}
			}
		}
		s.stats.APDUs++
		return append([]byte{0x00}, s.apdu(data)...)
	}
	return []byte{0x04}
}

var (
	swOK          = []byte{0x90, 0x00}
	swNotFound    = []byte{0x6A, 0x82}
	swNoRecord    = []byte{0x6A, 0x83}
	swWrongLength = []byte{0x67, 0x00}
	swBadP1P2     = []byte{0x6B, 0x00}
	swNoINS       = []byte{0x6D, 0x00}
	swNoCLA       = []byte{0x6E, 0x00}
	swNoEF        = []byte{0x69, 0x86} // command not allowed: no current EF
	swBlocked     = []byte{0x62, 0x83}
)

// apdu is the card: it answers one command APDU; s.mu is held.
func (s *Sim) apdu(a []byte) []byte {
	if len(a) < 4 {
		return swWrongLength
	}
	if a[0] != 0x00 {
		return swNoCLA
	}
	body := a[4:]
	var lc []byte
	le, hasLe := 0, false
	switch {
	case len(body) == 1:
		le, hasLe = int(body[0]), true
	case len(body) > 1:
		n := int(body[0])
		if len(body) != 1+n && len(body) != 2+n || n == 0 {
			return swWrongLength
		}
		lc = body[1 : 1+n]
		if len(body) == 2+n {
			le, hasLe = int(body[1+n]), true
		}
	}
	c := s.card
	switch a[1] {
	case 0xA4: // SELECT
		switch a[2] {
		case 0x04:
			if !bytes.Equal(lc, c.AID) || !bytes.Equal(c.AID, SSSEAID) {
				return swNotFound
			}
			if c.Locked {
				return swBlocked
			}
			s.df, s.ef = 1, 0
			if s.t0 {
				// A T=0 card holds the FCI back for GET RESPONSE.
				return []byte{0x61, byte(len(fci(c.AID)))}
			}
			return append(fci(c.AID), swOK...)
		case 0x02, 0x00:
			if len(lc) != 2 {
				return swWrongLength
			}
			fid := uint16(lc[0])<<8 | uint16(lc[1])
			switch {
			case fid == 0x3F00:
				s.df, s.ef = 0, 0
				return swOK
			case s.df == 1 && fid == 0xEF05:
				s.ef = 0x05
				return swOK
			case s.df == 1 && fid == 0xEF06:
				s.ef = 0x06
				return swOK
			}
			return swNotFound
		}
		return swBadP1P2
	case 0xB2: // READ RECORD
		if a[3] != 0x04 {
			return swBadP1P2
		}
		var file map[byte][]byte
		switch s.ef {
		case 0x05:
			file = c.EF05
		case 0x06:
			file = c.EF06
		default:
			return swNoEF
		}
		rec, ok := file[a[2]]
		if !ok {
			return swNoRecord
		}
		if !hasLe {
			return swWrongLength
		}
		if (le == 0 && s.t0) || (le != 0 && le != len(rec)) {
			return []byte{0x6C, byte(len(rec))}
		}
		return append(append([]byte(nil), rec...), swOK...)
	case 0xC0: // GET RESPONSE, after a T=0 SELECT of the application
		if s.df != 1 || !hasLe {
			return []byte{0x69, 0x85}
		}
		f := fci(c.AID)
		if le != len(f) {
			return []byte{0x6C, byte(len(f))}
		}
		return append(f, swOK...)
	}
	return swNoINS
}

// fci is the file control information a SELECT of the application returns:
// 6F { 84 AID }.
func fci(aid []byte) []byte {
	inner := append([]byte{0x84, byte(len(aid))}, aid...)
	return append([]byte{0x6F, byte(len(inner))}, inner...)
}
