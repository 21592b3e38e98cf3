package idcardsim

import (
	"bytes"
	"io"
	"sync"
	"unicode/utf16"
)

// Person is what the simulated card holds, as the text fields of §5 of the
// spec: dates as YYYYMMDD, ValidUntil a date or "长期", Sex and Ethnicity as
// codes. Fields are written as given (padded with spaces, cut to width), so
// tests can put invalid values on a card.
type Person struct {
	Name, Sex, Ethnicity, BirthDate, Address, Number, Issuer, ValidFrom, ValidUntil string
	Photo                                                                           []byte // 1024 bytes on real cards; nil means a fake 1024-byte blob
}

// Fake returns an obviously fake person: the name 测试样例 and an ID number
// in the non-existent region 99 with a correct check digit.
func Fake() Person {
	return Person{
		Name: "测试样例", Sex: "1", Ethnicity: "01", BirthDate: "19900307",
		Address: "测试省样例市演示区示范路1号", Number: "990101199003070015",
		Issuer: "样例市公安局测试分局", ValidFrom: "20200101", ValidUntil: "20400101",
	}
}

// Fault changes how the simulator answers one request.
type Fault struct {
	Garbage   []byte // bytes sent before the reply
	Truncated int    // >0: first send only this many bytes of the reply, then the whole reply
	// BadChecksum sends the reply with a wrong checksum instead of the reply.
	BadChecksum bool
	Silent      bool // send nothing
	Status      byte // non-zero: answer with this SW3 and no data instead
	RemoveCard  bool // the card leaves the field before the request is handled
}

// Stats counts what the simulator saw.
type Stats struct {
	Requests    map[[2]byte]int // by CMD, PARA
	BadRequests int             // requests with a bad checksum or length
}

// Sim is one simulated reader. Its state (card, faults, counters) survives
// Serve returning, so a test can unplug and replug the pty and Serve again.
type Sim struct {
	mu        sync.Mutex
	card      *Person
	found     bool // find card succeeded for the present card
	selected  bool // select card succeeded
	halted    bool // read done, find answers 80 until reinserted (HaltAfterRead)
	haltAfter bool
	silent    bool
	faults    map[[2]byte][]Fault
	stats     Stats
	writeMu   sync.Mutex
}

// New returns a simulator with no card in the field.
func New() *Sim {
	return &Sim{faults: map[[2]byte][]Fault{}, stats: Stats{Requests: map[[2]byte]int{}}}
}

// Insert puts p's card in the field (replacing any card).
func (s *Sim) Insert(p Person) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.card, s.found, s.selected, s.halted = &p, false, false, false
}

// Remove takes the card out of the field.
func (s *Sim) Remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.card, s.found, s.selected, s.halted = nil, false, false, false
}

// SetHaltAfterRead makes find answer "no card" after a successful read
// until the card is inserted again (a quirk of some modules, spec §8).
func (s *Sim) SetHaltAfterRead(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.haltAfter = on
}

// SetSilent makes the simulator ignore every request (on) or answer again.
func (s *Sim) SetSilent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = on
}

// Inject queues faults for the next requests with CMD cmd and PARA para,
// one per request, in order.
func (s *Sim) Inject(cmd, para byte, f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]byte{cmd, para}
	s.faults[k] = append(s.faults[k], f...)
}

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Requests: map[[2]byte]int{}, BadRequests: s.stats.BadRequests}
	for k, v := range s.stats.Requests {
		st.Requests[k] = v
	}
	return st
}

var preamble = []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69}

// Serve answers requests read from rw until a read fails (the pty was
// unplugged or closed), and returns that error. Bytes that are not a frame
// are ignored, as a module does.
func (s *Sim) Serve(rw io.ReadWriter) error {
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := rw.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			var req []byte
			var ok bool
			buf, req, ok = s.nextRequest(buf, rw)
			if !ok {
				break
			}
			if req != nil {
				if werr := s.handle(req, rw); werr != nil {
					return werr
				}
			}
		}
		if err != nil {
			return err
		}
	}
}

// nextRequest cuts the next request body (CMD PARA DATA) from buf. ok is
// false when more bytes are needed; req is nil when bytes were dropped.
func (s *Sim) nextRequest(buf []byte, w io.Writer) (rest, req []byte, ok bool) {
	i := bytes.Index(buf, preamble)
	if i < 0 {
		if len(buf) > 4 {
			buf = buf[len(buf)-4:]
		}
		return buf, nil, false
	}
	buf = buf[i:]
	if len(buf) < 7 {
		return buf, nil, false
	}
	n := int(buf[5])<<8 | int(buf[6])
	if n < 3 || n > 4096 {
		s.bad()
		s.reply(w, 0x11, nil, Fault{})
		return buf[1:], nil, true
	}
	if len(buf) < 7+n {
		return buf, nil, false
	}
	var x byte
	for _, c := range buf[5 : 7+n-1] {
		x ^= c
	}
	if x != buf[7+n-1] {
		s.bad()
		s.reply(w, 0x10, nil, Fault{})
		return buf[1:], nil, true
	}
	return buf[7+n:], buf[7 : 7+n-1], true
}

func (s *Sim) bad() {
	s.mu.Lock()
	s.stats.BadRequests++
	s.mu.Unlock()
}

// handle answers one request body.
func (s *Sim) handle(body []byte, w io.Writer) error {
	k := [2]byte{body[0], body[1]}
	s.mu.Lock()
	s.stats.Requests[k]++
	if s.silent {
		s.mu.Unlock()
		return nil
	}
	var f Fault
	if q := s.faults[k]; len(q) > 0 {
		f, s.faults[k] = q[0], q[1:]
	}
	if f.RemoveCard {
		s.card, s.found, s.selected, s.halted = nil, false, false, false
	}
	sw3, data := s.answerLocked(k)
	s.mu.Unlock()
	if f.Status != 0 {
		sw3, data = f.Status, nil
	}
	return s.reply(w, sw3, data, f)
}

// answerLocked is the module's logic (spec §3, §4).
func (s *Sim) answerLocked(k [2]byte) (sw3 byte, data []byte) {
	switch k {
	case [2]byte{0x10, 0xFF}: // reset
		s.found, s.selected = false, false
		return 0x90, nil
	case [2]byte{0x11, 0xFF}: // SAM status
		return 0x90, nil
	case [2]byte{0x20, 0x01}: // find
		if s.card == nil || s.halted {
			s.found, s.selected = false, false
			return 0x80, nil
		}
		s.found = true
		return 0x9F, make([]byte, 4)
	case [2]byte{0x20, 0x02}: // select
		if s.card == nil || !s.found {
			return 0x81, nil
		}
		s.selected = true
		return 0x90, make([]byte, 8)
	case [2]byte{0x30, 0x01}: // read base info
		if s.card == nil || !s.selected {
			return 0x41, nil
		}
		s.found, s.selected = false, false
		s.halted = s.haltAfter
		return 0x90, baseInfo(*s.card)
	}
	return 0x21, nil
}

// reply writes one response frame, shaped by f.
func (s *Sim) reply(w io.Writer, sw3 byte, data []byte, f Fault) error {
	if f.Silent {
		return nil
	}
	fr := encode(sw3, data)
	var out []byte
	out = append(out, f.Garbage...)
	if f.Truncated > 0 && f.Truncated < len(fr) {
		out = append(out, fr[:f.Truncated]...)
	}
	if f.BadChecksum {
		fr[len(fr)-1] ^= 0x5A
	}
	out = append(out, fr...)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, err := w.Write(out)
	return err
}

func encode(sw3 byte, data []byte) []byte {
	n := 3 + len(data) + 1
	fr := append([]byte{}, preamble...)
	fr = append(fr, byte(n>>8), byte(n), 0x00, 0x00, sw3)
	fr = append(fr, data...)
	var x byte
	for _, c := range fr[5:] {
		x ^= c
	}
	return append(fr, x)
}

// baseInfo lays out p as the read-base-info data of spec §5.
func baseInfo(p Person) []byte {
	var text []byte
	put := func(s string, width int) {
		u := utf16.Encode([]rune(s))
		for i := 0; i < width/2; i++ {
			c := uint16(' ')
			if i < len(u) {
				c = u[i]
			}
			text = append(text, byte(c), byte(c>>8))
		}
	}
	put(p.Name, 30)
	put(p.Sex, 2)
	put(p.Ethnicity, 4)
	put(p.BirthDate, 16)
	put(p.Address, 70)
	put(p.Number, 36)
	put(p.Issuer, 30)
	put(p.ValidFrom, 16)
	put(p.ValidUntil, 16)
	put("", 256-len(text))
	photo := p.Photo
	if photo == nil {
		photo = make([]byte, 1024)
		copy(photo, "WLT-SIM-FAKE")
	}
	out := []byte{byte(len(text) >> 8), byte(len(text)), byte(len(photo) >> 8), byte(len(photo))}
	out = append(out, text...)
	return append(out, photo...)
}
