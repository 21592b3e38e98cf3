package qrscansim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/kioskedge/kioskedge/testhw/pty"
)

// ErrDetached is returned by the scan methods when no link is attached.
var ErrDetached = errors.New("qrscansim: no link attached")

// Options configures a simulated scanner. Zero values pick the defaults of
// qrscan.md: CR terminator, no AIM identifier, probe "\x16M\rPING." answered
// by the line "OK".
type Options struct {
	Terminator []byte // appended to every line; nil means CR
	// AIM, when set (e.g. "]Q1"), is sent before every scanned payload, as
	// a scanner with "transmit AIM ID" enabled does.
	AIM string
	// ProbeRequest and ProbeReply: when ProbeRequest arrives, ProbeReply
	// followed by the terminator is sent back (unless silent).
	ProbeRequest, ProbeReply []byte
}

// Default probe (qrscan.md §5).
var (
	DefaultProbeRequest = []byte("\x16M\rPING.")
	DefaultProbeReply   = []byte("OK")
)

// Scanner is a simulated scanner. Its methods are safe for concurrent use.
type Scanner struct {
	opts Options

	mu     sync.Mutex
	rw     io.ReadWriter
	silent bool
	probes int // probe requests received
	in     []byte
}

// New returns a detached simulated scanner.
func New(opts Options) *Scanner {
	if opts.Terminator == nil {
		opts.Terminator = []byte{'\r'}
	}
	if opts.ProbeRequest == nil {
		opts.ProbeRequest = DefaultProbeRequest
	}
	if opts.ProbeReply == nil {
		opts.ProbeReply = DefaultProbeReply
	}
	return &Scanner{opts: opts}
}

// Serve attaches the scanner to rw and reads what the host sends (probe
// requests) until reading fails (the link was unplugged or closed) or ctx
// ends; it then detaches and returns the read error, or ctx.Err(). When rw
// is a file (a pty master) Serve notices ctx ending within about 50 ms;
// for other links it returns at the next read after ctx ends.
func (s *Scanner) Serve(ctx context.Context, rw io.ReadWriter) error {
	s.mu.Lock()
	s.rw, s.in = rw, nil
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.rw == rw {
			s.rw = nil
		}
		s.mu.Unlock()
	}()
	buf := make([]byte, 256)
	for {
		n, err := pty.ReadContext(ctx, rw, buf)
		if n > 0 {
			s.received(rw, buf[:n])
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
}

func (s *Scanner) received(rw io.ReadWriter, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.in = append(s.in, p...)
	for {
		i := bytes.Index(s.in, s.opts.ProbeRequest)
		if i < 0 {
			// Keep what could be the start of a request.
			if k := len(s.opts.ProbeRequest) - 1; len(s.in) > k {
				s.in = append(s.in[:0], s.in[len(s.in)-k:]...)
			}
			return
		}
		s.in = s.in[i+len(s.opts.ProbeRequest):]
		s.probes++
		if !s.silent {
			// A failed reply is what a flaky device does; the host copes.
			_, _ = rw.Write(s.line([]byte(nil), s.opts.ProbeReply))
		}
	}
}

func (s *Scanner) line(dst, payload []byte) []byte {
	dst = append(dst, payload...)
	return append(dst, s.opts.Terminator...)
}

func (s *Scanner) write(p []byte) error {
	s.mu.Lock()
	rw := s.rw
	s.mu.Unlock()
	if rw == nil {
		return ErrDetached
	}
	_, err := rw.Write(p)
	return err
}

// Scan sends payload as one scanned code: AIM identifier (if configured),
// payload, terminator, in one write.
func (s *Scanner) Scan(payload string) error {
	return s.write(s.line([]byte(s.opts.AIM), []byte(payload)))
}

// Garbage sends noise followed by the terminator, as a scanner does when it
// misreads or glitches on power-up: the host must drop that line and read
// the next. noise should hold control bytes or invalid UTF-8.
func (s *Scanner) Garbage(noise []byte) error {
	return s.write(s.line(nil, noise))
}

// Truncated sends only the first n bytes of payload's line and then nothing:
// a scanner that lost the rest of a line. The host must drop the partial
// line after its inter-character timeout.
func (s *Scanner) Truncated(payload string, n int) error {
	l := s.line([]byte(s.opts.AIM), []byte(payload))
	return s.write(l[:min(n, len(l))])
}

// Overlong sends a line of n printable bytes, then the terminator in a
// second write.
func (s *Scanner) Overlong(n int) error {
	l := []byte(strings.Repeat("X", n))
	if err := s.write(l); err != nil {
		return err
	}
	return s.write(s.opts.Terminator)
}

// Raw writes p unchanged.
func (s *Scanner) Raw(p []byte) error { return s.write(p) }

// SetSilent makes the scanner stop (true) or resume (false) answering probes.
func (s *Scanner) SetSilent(silent bool) {
	s.mu.Lock()
	s.silent = silent
	s.mu.Unlock()
}

// Probes returns how many probe requests the scanner has received.
func (s *Scanner) Probes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probes
}

// Attached reports whether Serve is running on a link.
func (s *Scanner) Attached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rw != nil
}
