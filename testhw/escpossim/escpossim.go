package escpossim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/kioskedge/kioskedge/testhw/pty"
)

// Fault is a reply fault.
type Fault int

// Faults.
const (
	NoFault Fault = iota
	Silent        // DLE EOT goes unanswered
	Garbage       // DLE EOT is answered with 0xFF (fixed bits wrong)
)

type style struct{ bold, dw, dh bool }

type segment struct {
	st   style
	text []byte
}

// Printer is a simulated receipt printer. Its methods are safe for
// concurrent use.
type Printer struct {
	mu sync.Mutex

	// settable state
	paperOut, nearEnd, coverOpen bool
	fault                        Fault

	// parser state
	pending []byte
	chinese bool
	st      style
	align   byte
	line    []segment
	qr      []byte
	paper   strings.Builder
	unknown int
	queries int
}

// New returns a simulated printer with paper and the cover closed.
func New() *Printer { return &Printer{} }

// SetPaperOut, SetPaperNearEnd and SetCoverOpen set the printer's state as
// the status replies report it.
func (p *Printer) SetPaperOut(v bool) { p.set(func() { p.paperOut = v }) }

// SetPaperNearEnd sets the paper-near-end sensor.
func (p *Printer) SetPaperNearEnd(v bool) { p.set(func() { p.nearEnd = v }) }

// SetCoverOpen opens or closes the cover.
func (p *Printer) SetCoverOpen(v bool) { p.set(func() { p.coverOpen = v }) }

// SetFault sets the reply fault.
func (p *Printer) SetFault(f Fault) { p.set(func() { p.fault = f }) }

func (p *Printer) set(f func()) {
	p.mu.Lock()
	f()
	p.mu.Unlock()
}

// Paper returns everything printed so far.
func (p *Printer) Paper() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paper.String()
}

// Unknown returns how many unknown commands were received.
func (p *Printer) Unknown() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unknown
}

// Queries returns how many DLE EOT queries were received.
func (p *Printer) Queries() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queries
}

// Serve reads the host's bytes from rw until reading fails (unplugged,
// closed) or ctx ends, printing them and answering status queries on rw. It
// returns the read error or ctx.Err(). A command split across reads is
// completed by the next read; a partial command left at the end is dropped.
func (p *Printer) Serve(ctx context.Context, rw io.ReadWriter) error {
	p.mu.Lock()
	p.pending = p.pending[:0]
	p.mu.Unlock()
	buf := make([]byte, 512)
	for {
		n, err := pty.ReadContext(ctx, rw, buf)
		if n > 0 {
			if reply := p.Feed(buf[:n]); len(reply) > 0 {
				// A failed reply is a flaky device; the host copes.
				_, _ = rw.Write(reply)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
}

// Feed processes bytes from the host and returns the status replies due.
func (p *Printer) Feed(b []byte) (reply []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, b...)
	for len(p.pending) > 0 {
		n, r := p.step(p.pending)
		if n == 0 {
			break // incomplete command
		}
		reply = append(reply, r...)
		p.pending = p.pending[n:]
	}
	return reply
}

// printing reports whether print data is accepted.
func (p *Printer) printing() bool { return !p.paperOut && !p.coverOpen }

// step parses one command or text byte at the head of b and returns how
// many bytes it used (0: need more) and any reply.
func (p *Printer) step(b []byte) (int, []byte) {
	need := func(n int) bool { return len(b) >= n }
	switch b[0] {
	case 0x0A: // LF
		p.flush()
		return 1, nil
	case 0x10: // DLE EOT n
		if !need(3) {
			return 0, nil
		}
		if b[1] != 0x04 {
			return p.unknownCmd(b[:2])
		}
		p.queries++
		return 3, p.status(b[2])
	case 0x1B: // ESC
		if !need(2) {
			return 0, nil
		}
		switch b[1] {
		case '@':
			p.flushPartial()
			p.st, p.align, p.chinese, p.qr = style{}, 0, false, nil
			return 2, nil
		case 'E', 'a', 'd':
			if !need(3) {
				return 0, nil
			}
			switch b[1] {
			case 'E':
				p.st.bold = b[2]&1 == 1
			case 'a':
				p.align = b[2] % 3
				if b[2] >= '0' && b[2] <= '2' {
					p.align = b[2] - '0'
				}
			case 'd':
				for range int(b[2]) {
					p.flush()
				}
			}
			return 3, nil
		}
		return p.unknownCmd(b[:2])
	case 0x1C: // FS
		if !need(2) {
			return 0, nil
		}
		switch b[1] {
		case '&':
			p.chinese = true
			return 2, nil
		case '.':
			p.chinese = false
			return 2, nil
		}
		return p.unknownCmd(b[:2])
	case 0x1D: // GS
		if !need(2) {
			return 0, nil
		}
		switch b[1] {
		case '!':
			if !need(3) {
				return 0, nil
			}
			p.st.dw, p.st.dh = b[2]&0x70 != 0, b[2]&0x07 != 0
			return 3, nil
		case 'V':
			if !need(3) {
				return 0, nil
			}
			m, n := b[2], 3
			if m == 65 || m == 66 {
				if !need(4) {
					return 0, nil
				}
				n = 4
			}
			p.flushPartial()
			if p.printing() {
				if m == 1 || m == 49 || m == 66 {
					p.paper.WriteString("--- cut (partial) ---\n")
				} else {
					p.paper.WriteString("--- cut ---\n")
				}
			}
			return n, nil
		case '(':
			if !need(5) {
				return 0, nil
			}
			if b[2] != 'k' {
				return p.unknownCmd(b[:3])
			}
			size := int(b[3]) | int(b[4])<<8
			if !need(5 + size) {
				return 0, nil
			}
			p.qrFunction(b[5 : 5+size])
			return 5 + size, nil
		}
		return p.unknownCmd(b[:2])
	}
	if b[0] < 0x20 || b[0] == 0x7f {
		return p.unknownCmd(b[:1])
	}
	if p.printing() {
		if n := len(p.line); n > 0 && p.line[n-1].st == p.st {
			p.line[n-1].text = append(p.line[n-1].text, b[0])
		} else {
			p.line = append(p.line, segment{st: p.st, text: []byte{b[0]}})
		}
	}
	return 1, nil
}

// qrFunction handles GS ( k's cn fn [params]; only cn 49 (QR) is known.
func (p *Printer) qrFunction(d []byte) {
	if len(d) < 2 || d[0] != 49 {
		p.unknown++
		return
	}
	switch d[1] {
	case 65, 67, 69: // model, module size, error correction: no rendering
	case 80: // store: m=48, data
		if len(d) >= 3 {
			p.qr = bytes.Clone(d[3:])
		}
	case 81: // print
		p.flushPartial()
		if p.printing() && p.qr != nil {
			fmt.Fprintf(&p.paper, "%s[QR:%s]\n", p.alignTag(), p.qr)
		}
	default:
		p.unknown++
	}
}

func (p *Printer) unknownCmd(b []byte) (int, []byte) {
	p.unknown++
	if p.printing() {
		p.line = append(p.line, segment{st: style{}, text: fmt.Appendf(nil, "[?%x]", b)})
	}
	return len(b), nil
}

func (p *Printer) status(n byte) []byte {
	switch p.fault {
	case Silent:
		return nil
	case Garbage:
		return []byte{0xFF}
	}
	b := byte(0x12)
	switch n {
	case 1:
		if p.paperOut || p.coverOpen {
			b |= 0x08
		}
	case 2:
		if p.coverOpen {
			b |= 0x04
		}
		if p.paperOut {
			b |= 0x20
		}
	case 4:
		if p.nearEnd {
			b |= 0x0C
		}
		if p.paperOut {
			b |= 0x60
		}
	}
	return []byte{b}
}

func (p *Printer) alignTag() string { return [...]string{"L|", "C|", "R|"}[p.align%3] }

// flushPartial prints the current line if it has text (a QR code or a cut
// starts on a new line).
func (p *Printer) flushPartial() {
	if len(p.line) > 0 {
		p.flush()
	}
}

// flush prints the current line (LF).
func (p *Printer) flush() {
	if !p.printing() {
		p.line = p.line[:0]
		return
	}
	if len(p.line) > 0 {
		p.paper.WriteString(p.alignTag())
	}
	for _, s := range p.line {
		tag := ""
		switch {
		case s.st.dw && s.st.dh:
			tag = "wh"
		case s.st.dw:
			tag = "w"
		case s.st.dh:
			tag = "h"
		}
		text := p.decode(s.text)
		if s.st.bold {
			text = "<b>" + text + "</b>"
		}
		if tag != "" {
			text = "<" + tag + ">" + text + "</" + tag + ">"
		}
		p.paper.WriteString(text)
	}
	p.paper.WriteByte('\n')
	p.line = p.line[:0]
}

func (p *Printer) decode(b []byte) string {
	if p.chinese {
		if s, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b); err == nil {
			return string(s)
		}
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c > 0x7e {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}
