package osdpsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"io"
	"sync"
)

// Config describes one simulated PD.
type Config struct {
	Address  byte
	Vendor   [3]byte
	Model    byte
	Version  byte
	Serial   uint32
	Firmware [3]byte
	// Key is the PD's SCBK (16 bytes) or nil for none.
	Key []byte
	// Install puts the PD in install mode: it accepts SCBK-D until an
	// osdp_KEYSET gives it a key.
	Install bool
	// SecureOnly refuses plaintext commands other than osdp_ID, osdp_CAP
	// and the handshake, with NAK 0x06.
	SecureOnly bool
	// Rand supplies RND.B [crypto/rand]; tests pass fixed bytes to replay
	// vectors.
	Rand io.Reader
}

// Fault is a one-shot disturbance of the PD's next reply.
type Fault int

// Faults for Inject.
const (
	// Garbage writes noise (including a stray SOM) before the reply.
	Garbage Fault = iota + 1
	// Truncated writes the first half of the reply, then the whole reply.
	Truncated
	// BadCRC writes the reply with a corrupted check value and nothing else.
	BadCRC
	// NAK replies osdp_NAK 0x09 (unable to process) instead of answering.
	NAK
	// Busy replies osdp_BUSY; the repeated command is then answered.
	Busy
)

// LEDState is the permanent colour of one LED as last commanded, and the
// temporary colour when a temporary state was set.
type LEDState struct {
	PermOnColor, TempOnColor byte
	TempTimer                uint16
	Set                      bool
}

// BuzzerState is the last osdp_BUZ record.
type BuzzerState struct {
	Tone, On, Off, Count byte
	Set                  bool
}

// PD is one simulated reader. All methods are safe for concurrent use.
type PD struct {
	mu      sync.Mutex
	cfg     Config
	key     []byte
	install bool
	events  [][2][]byte // pending poll replies: {code}, data
	faults  []Fault
	silent  bool
	leds    map[byte]LEDState
	buzzer  BuzzerState
	text    string
	counts  map[byte]int
	tamper  bool

	// link state
	lastSeq   byte
	lastReply []byte
	// secure channel
	rndA, rndB []byte
	pending    *scKeys // keys between CHLNG and SCRYPT
	keys       *scKeys // open channel
	cmac, rmac []byte
	newKey     []byte // from KEYSET, installed once the ACK is built
}

// NewPD returns a PD with cfg.
func NewPD(cfg Config) *PD {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &PD{cfg: cfg, key: append([]byte(nil), cfg.Key...), install: cfg.Install,
		leds: map[byte]LEDState{}, counts: map[byte]int{}}
}

// Address returns the PD's bus address.
func (p *PD) Address() byte { return p.cfg.Address }

func (p *PD) queue(code byte, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, [2][]byte{{code}, data})
}

// Swipe presents a card: the next poll is answered with osdp_RAW (format 1,
// Wiegand) carrying bits bits of data, MSB first.
func (p *PD) Swipe(bits int, data []byte) {
	p.queue(0x50, append([]byte{0, 1, byte(bits), byte(bits >> 8)}, data...))
}

// SwipeFormatted presents a card the reader decodes itself: osdp_FMT with
// number as ASCII.
func (p *PD) SwipeFormatted(number string) {
	p.queue(0x51, append([]byte{0, 0, byte(len(number))}, number...))
}

// Keys types keys on the keypad ('*' and '#' go as 0x7F and 0x0D).
func (p *PD) Keys(keys string) {
	b := []byte(keys)
	for i, c := range b {
		switch c {
		case '*':
			b[i] = 0x7F
		case '#':
			b[i] = 0x0D
		}
	}
	p.queue(0x53, append([]byte{0, byte(len(b))}, b...))
}

// SetTamper changes the tamper switch; the next poll reports osdp_LSTATR.
func (p *PD) SetTamper(on bool) {
	p.mu.Lock()
	p.tamper = on
	p.mu.Unlock()
	t := byte(0)
	if on {
		t = 1
	}
	p.queue(0x48, []byte{t, 0})
}

// Inject disturbs the PD's next reply with f; several queue in order.
func (p *PD) Inject(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, f)
}

// SetSilent makes the PD ignore every command (on) or answer again.
func (p *PD) SetSilent(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = on
}

// LED returns the state of LED n of reader 0.
func (p *PD) LED(n byte) LEDState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leds[n]
}

// Buzzer returns the last buzzer command.
func (p *PD) Buzzer() BuzzerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buzzer
}

// Text returns the last text shown.
func (p *PD) Text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.text
}

// Key returns the PD's current SCBK (nil when none).
func (p *PD) Key() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.key...)
}

// InstallMode reports whether the PD still accepts SCBK-D.
func (p *PD) InstallMode() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.install
}

// Secure reports whether a secure channel is open.
func (p *PD) Secure() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys != nil
}

// Count returns how many commands with code the PD has processed (repeats
// and ignored commands excluded).
func (p *PD) Count(code byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[code]
}

// Bus is a set of PDs sharing one line.
type Bus struct {
	mu  sync.Mutex
	pds map[byte]*PD
	buf []byte
}

// NewBus returns a bus with pds at their addresses.
func NewBus(pds ...*PD) *Bus {
	b := &Bus{pds: map[byte]*PD{}}
	for _, p := range pds {
		b.pds[p.cfg.Address] = p
	}
	return b
}

// Serve answers commands read from rw until a Read fails (closing rw ends
// it; the error is returned) or ctx is done (checked between reads; nil
// is returned). PD state survives across Serve calls, so a test can
// unplug, replug and Serve the new device. One Serve at a time.
func (b *Bus) Serve(ctx context.Context, rw io.ReadWriter) error {
	b.mu.Lock()
	b.buf = b.buf[:0]
	b.mu.Unlock()
	chunk := make([]byte, 512)
	for ctx.Err() == nil {
		n, err := rw.Read(chunk)
		if n > 0 {
			b.buf = append(b.buf, chunk[:n]...)
			for {
				f, drop, more := parseFrame(b.buf)
				b.buf = b.buf[drop:]
				if f != nil {
					if out := b.handle(f); len(out) > 0 {
						if _, werr := rw.Write(out); werr != nil {
							return werr
						}
					}
					continue
				}
				if more || len(b.buf) == 0 {
					break
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *Bus) handle(f *frame) []byte {
	if f.addr&0x80 != 0 {
		return nil // a reply (another PD's, or an echo)
	}
	p := b.pds[f.addr]
	if p == nil && f.addr == 0x7F && len(b.pds) == 1 {
		// The configuration address: a lone PD answers it with its own
		// address, so a tool can find a reader whose address it does not
		// know. With several PDs on the bus their replies would collide,
		// so none answers.
		for _, only := range b.pds {
			p = only
		}
	}
	if p == nil {
		return nil
	}
	return p.handle(f)
}

var garbage = []byte{0x00, 0xFF, 0x53, 0x00, 0x55, 0xAA, 0x13}

func (p *PD) handle(f *frame) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.silent {
		return nil
	}
	var fault Fault
	if len(p.faults) > 0 {
		fault, p.faults = p.faults[0], p.faults[1:]
	}
	// Sequence (osdp.md §3): 0 restarts; a repeat gets the last reply again.
	var reply []byte
	switch {
	case f.seq == 0:
		p.keys, p.pending = nil, nil
	case f.seq == p.lastSeq && p.lastReply != nil:
		return p.disturb(fault, p.lastReply)
	case f.seq != p.lastSeq%3+1:
		reply = buildReply(p.cfg.Address, f.seq, f.useCRC, nil, 0x41, []byte{0x04}, nil)
		return p.disturb(fault, reply)
	}
	switch fault {
	case NAK:
		reply = buildReply(p.cfg.Address, f.seq, f.useCRC, nil, 0x41, []byte{0x09}, nil)
	case Busy:
		// Not recorded: the repeated command is processed afresh.
		return buildReply(p.cfg.Address, f.seq, f.useCRC, nil, 0x79, nil, nil)
	default:
		reply = p.process(f)
	}
	p.lastSeq, p.lastReply = f.seq, reply
	return p.disturb(fault, reply)
}

func (p *PD) disturb(fault Fault, reply []byte) []byte {
	switch fault {
	case Garbage:
		return cat(garbage, reply)
	case Truncated:
		return cat(reply[:len(reply)/2], reply)
	case BadCRC:
		bad := append([]byte{}, reply...)
		bad[len(bad)-1] ^= 0x5A
		return bad
	}
	return reply
}

func (p *PD) nak(f *frame, code byte) []byte {
	if code == 0x05 || code == 0x06 {
		p.keys = nil
	}
	return buildReply(p.cfg.Address, f.seq, f.useCRC, nil, 0x41, []byte{code}, nil)
}

// process answers one fresh command; p.mu is held.
func (p *PD) process(f *frame) []byte {
	data := f.data
	secured := false
	switch f.scbType {
	case 0x11:
		return p.challenge(f)
	case 0x13:
		return p.serverCryptogram(f)
	case 0x15, 0x17:
		if p.keys == nil {
			return p.nak(f, 0x05)
		}
		mac := cbcMAC(*p.keys, p.rmac, f.macInput)
		if subtle.ConstantTimeCompare(mac[:4], f.mac) != 1 {
			return p.nak(f, 0x05)
		}
		if f.scbType == 0x17 {
			d, ok := decrypt(*p.keys, p.rmac, data)
			if !ok {
				return p.nak(f, 0x05)
			}
			data = d
		} else if len(data) != 0 {
			return p.nak(f, 0x05)
		}
		p.cmac = mac
		secured = true
	case 0:
		if p.keys != nil {
			p.keys = nil // plaintext ends the channel
		}
		if p.cfg.SecureOnly && f.code != 0x61 && f.code != 0x62 {
			return p.nak(f, 0x06)
		}
	default:
		return p.nak(f, 0x05)
	}
	p.counts[f.code]++
	code, out := p.command(f.code, data, secured)
	if !secured {
		return buildReply(p.cfg.Address, f.seq, f.useCRC, nil, code, out, nil)
	}
	k := *p.keys
	scb := []byte{0x16}
	if len(out) > 0 {
		scb[0] = 0x18
		out = encrypt(k, p.cmac, out)
	}
	r := buildReply(p.cfg.Address, f.seq, f.useCRC, scb, code, out, func(b []byte) []byte {
		p.rmac = cbcMAC(k, p.cmac, b)
		return p.rmac
	})
	if code == 0x40 && f.code == 0x75 && p.newKey != nil {
		p.key, p.install, p.newKey = p.newKey, false, nil
	}
	return r
}

func (p *PD) challenge(f *frame) []byte {
	if f.code != 0x76 || len(f.data) != 8 || len(f.scbData) != 1 {
		return p.nak(f, 0x05)
	}
	var scbk []byte
	switch {
	case f.scbData[0] == 0 && p.install:
		scbk = scbkD
	case f.scbData[0] == 1 && len(p.key) == 16:
		scbk = p.key
	default:
		return p.nak(f, 0x05)
	}
	p.counts[f.code]++
	p.keys = nil
	p.rndA = append([]byte{}, f.data...)
	p.rndB = make([]byte, 8)
	if _, err := io.ReadFull(p.cfg.Rand, p.rndB); err != nil {
		return p.nak(f, 0x09)
	}
	k := sessionKeys(scbk, p.rndA)
	p.pending = &k
	cuid := make([]byte, 8)
	copy(cuid, p.cfg.Vendor[:])
	cuid[3] = p.cfg.Model
	binary.LittleEndian.PutUint32(cuid[4:], p.cfg.Serial)
	client := aesBlock(k.enc, cat(p.rndA, p.rndB))
	return buildReply(p.cfg.Address, f.seq, f.useCRC, []byte{0x12, f.scbData[0]}, 0x76, cat(cat(cuid, p.rndB), client), nil)
}

func (p *PD) serverCryptogram(f *frame) []byte {
	if f.code != 0x77 || p.pending == nil || len(f.data) != 16 {
		return p.nak(f, 0x05)
	}
	p.counts[f.code]++
	k := *p.pending
	p.pending = nil
	if !bytes.Equal(aesBlock(k.enc, cat(p.rndB, p.rndA)), f.data) {
		return buildReply(p.cfg.Address, f.seq, f.useCRC, []byte{0x14, 0xFF}, 0x78, nil, nil)
	}
	p.keys = &k
	p.rmac = aesBlock(k.mac2, aesBlock(k.mac1, f.data))
	return buildReply(p.cfg.Address, f.seq, f.useCRC, []byte{0x14, 0x01}, 0x78, p.rmac, nil)
}

// command runs a command and returns the reply code and data; p.mu is held.
func (p *PD) command(code byte, d []byte, secured bool) (byte, []byte) {
	switch code {
	case 0x60: // POLL
		if len(p.events) == 0 {
			return 0x40, nil
		}
		e := p.events[0]
		p.events = p.events[1:]
		return e[0][0], e[1]
	case 0x61: // ID
		out := append([]byte{}, p.cfg.Vendor[:]...)
		out = append(out, p.cfg.Model, p.cfg.Version)
		out = binary.LittleEndian.AppendUint32(out, p.cfg.Serial)
		return 0x45, append(out, p.cfg.Firmware[:]...)
	case 0x62: // CAP
		return 0x46, []byte{4, 1, 1, 5, 1, 1, 6, 1, 1, 8, 1, 0, 9, 1, 1}
	case 0x64: // LSTAT
		t := byte(0)
		if p.tamper {
			t = 1
		}
		return 0x48, []byte{t, 0}
	case 0x69: // LED
		if len(d) == 0 || len(d)%14 != 0 {
			return 0x41, []byte{0x02}
		}
		for i := 0; i < len(d); i += 14 {
			r := d[i : i+14]
			s := p.leds[r[1]]
			if r[2] == 2 {
				s.TempOnColor, s.TempTimer = r[5], uint16(r[7])|uint16(r[8])<<8
			}
			if r[9] == 1 {
				s.PermOnColor = r[12]
			}
			s.Set = true
			p.leds[r[1]] = s
		}
		return 0x40, nil
	case 0x6A: // BUZ
		if len(d) != 5 {
			return 0x41, []byte{0x02}
		}
		p.buzzer = BuzzerState{Tone: d[1], On: d[2], Off: d[3], Count: d[4], Set: true}
		return 0x40, nil
	case 0x6B: // TEXT
		if len(d) < 6 || int(d[5]) != len(d)-6 {
			return 0x41, []byte{0x02}
		}
		p.text = string(d[6:])
		return 0x40, nil
	case 0x75: // KEYSET
		if !secured {
			return 0x41, []byte{0x06}
		}
		if len(d) != 18 || d[0] != 1 || d[1] != 16 {
			return 0x41, []byte{0x09}
		}
		p.newKey = append([]byte{}, d[2:]...)
		return 0x40, nil
	}
	return 0x41, []byte{0x03}
}

// PendingFaults returns how many injected faults have not hit a reply yet.
func (p *PD) PendingFaults() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.faults)
}
