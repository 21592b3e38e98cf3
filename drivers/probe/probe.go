package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/drivers/qrscan"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

// Kind is what a probe found on a port.
type Kind string

// Kinds of result.
const (
	OSDP    Kind = "osdp"    // an OSDP reader answered osdp_ID
	IDCard  Kind = "idcard"  // a resident ID-card reader (SAM module) answered SAM status
	SSCard  Kind = "sscard"  // a social-security-card reader answered CARD STATUS
	ESCPOS  Kind = "escpos"  // a receipt printer answered DLE EOT
	QRScan  Kind = "qrscan"  // nothing answered, but text lines arrived unasked: a scanner that scanned
	Silent  Kind = "silent"  // nothing answered and nothing was heard: a QR scanner, or nothing
	Unknown Kind = "unknown" // bytes arrived but none was a reply to a query
	Busy    Kind = "busy"    // the port is open elsewhere (kioskd); not probed
	Error   Kind = "error"   // the port could not be opened or failed while probing
)

// DefaultTimeout is how long each query waits for its reply when
// Options.Timeout is zero. Devices answer status queries in tens of
// milliseconds; a silent port takes [SilentQueries] of these.
const DefaultTimeout = 200 * time.Millisecond

// DefaultConcurrency is how many ports [Ports] probes at once when
// Options.Concurrency is zero.
const DefaultConcurrency = 16

// Result is what was found on one port.
type Result struct {
	Path string
	Kind Kind
	// Baud is the rate the device answered at; 0 unless identified.
	Baud int
	// Addr is an OSDP reader's own bus address (from its reply to the
	// configuration address); -1 for other kinds.
	Addr int
	// Detail is one human line: the device's identity or status, or what
	// to do about a Busy or Error port. It holds no personal data.
	Detail string
	// Err is the underlying failure for Busy and Error, nil otherwise.
	Err error
}

// Options tune a probe. The zero value probes real ports with the defaults.
type Options struct {
	// Timeout is each query's reply wait; 0 means DefaultTimeout.
	Timeout time.Duration
	// Concurrency bounds the ports [Ports] probes at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Open opens a port; nil means serialport.Open. Tests pass fakes.
	Open func(path string, mode serialport.Mode) (serialport.Port, error)
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// Ports probes every path concurrently (at most Options.Concurrency at once)
// and returns one Result per path, in the order of paths. When ctx ends,
// ports not finished report Kind Error with ctx's error.
func Ports(ctx context.Context, paths []string, opts Options) []Result {
	out := make([]Result, len(paths))
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = failed(p, ctx.Err())
				return
			}
			defer func() { <-sem }()
			out[i] = Port(ctx, p, opts)
		}()
	}
	wg.Wait()
	return out
}

// Port probes the port at path: the printer query at every baud rate, then
// the OSDP, ID-card and SS-card queries at theirs (see the package doc), one
// at a time, stopping at the first device that answers. It never returns an
// error: failures are Results of Kind Busy (the port is open elsewhere) or
// Error (not found, permission, I/O, ctx ended), with Err set. The port is
// closed before Port returns.
func Port(ctx context.Context, path string, opts Options) Result {
	pr := &prober{path: path, opts: opts, wait: opts.timeout(), asked: map[Kind]bool{}}
	if pr.opts.Open == nil {
		pr.opts.Open = serialport.Open
	}
	defer pr.close()
	r, err := pr.run(ctx)
	if err != nil {
		return failed(path, err)
	}
	return r
}

// A step is one query, for a kind of device, at one baud rate.
type step struct {
	baud int
	kind Kind // ESCPOS, OSDP, IDCard or SSCard
}

// plan is the order of queries (package doc): the printer query at every
// rate first, ending at 115200 where the ID-card and SS-card readers
// usually are, then down the rates.
func plan() []step {
	var s []step
	for _, b := range []int{9600, 19200, 38400, 57600, 115200} {
		s = append(s, step{b, ESCPOS})
	}
	for _, b := range []int{115200, 57600, 38400, 19200, 9600} {
		if b == 115200 || b == 9600 {
			s = append(s, step{b, SSCard})
		}
		s = append(s, step{b, IDCard}, step{b, OSDP})
	}
	return s
}

// SilentQueries is how many queries a port that answers none receives:
// len(plan()).
const SilentQueries = 17

type prober struct {
	path  string
	opts  Options
	wait  time.Duration
	port  serialport.Port
	baud  int
	asked map[Kind]bool // queries sent since the port was opened at this rate
	last  []byte        // the query last sent
	noise int           // bytes received that answered nothing
	// chatter keeps the first of those bytes, by baud rate, to tell a
	// scanner that scanned from a device talking garbage.
	chatter []chunk
	kept    int
	buf     [512]byte
}

type chunk struct {
	baud int
	b    []byte
}

// maxChatter bounds the unasked bytes kept.
const maxChatter = 4096

func (pr *prober) run(ctx context.Context) (Result, error) {
	for _, s := range plan() {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if err := pr.at(s.baud); err != nil {
			return Result{}, err
		}
		r, ok, err := askStep(ctx, pr, s.kind)
		if err != nil {
			return Result{}, err
		}
		if ok {
			r.Path, r.Baud = pr.path, s.baud
			if r.Kind != OSDP {
				r.Addr = -1
			}
			return r, nil
		}
	}
	if baud, lines, ok := scanned(pr.chatter); ok && pr.noise == pr.kept {
		return Result{Path: pr.path, Kind: QRScan, Baud: baud, Addr: -1,
			Detail: fmt.Sprintf("answered no query, but %d line(s) of text arrived unasked: a QR scanner that scanned", lines)}, nil
	}
	if pr.noise > 0 {
		return Result{Path: pr.path, Kind: Unknown, Addr: -1,
			Detail: fmt.Sprintf("%d bytes heard that answer no query: a device at an unusual baud rate or speaking another protocol, or a QR scanner scanning", pr.noise)}, nil
	}
	return Result{Path: pr.path, Kind: Silent, Addr: -1,
		Detail: "no answer to any query: a QR scanner (scan a code while probing to tell), or nothing connected"}, nil
}

// at makes sure the port is open at baud, reopening it at a new rate.
func (pr *prober) at(baud int) error {
	if pr.port != nil && pr.baud == baud {
		return nil
	}
	pr.close()
	p, err := pr.opts.Open(pr.path, serialport.Mode{BaudRate: baud})
	if err != nil {
		return err
	}
	pr.port, pr.baud = p, baud
	clear(pr.asked)
	return nil
}

func (pr *prober) close() {
	if pr.port != nil {
		// Nothing was written that a failed close could lose.
		_ = pr.port.Close()
		pr.port = nil
	}
}

// send discards stale input and writes q.
func (pr *prober) send(q []byte) error {
	pr.last = q
	if err := pr.port.ResetInputBuffer(); err != nil {
		return err
	}
	_, err := pr.port.Write(q)
	return err
}

// listen reads into got until done(got) or d has passed since start. A
// read timeout is not an error.
func (pr *prober) listen(ctx context.Context, got []byte, start time.Time, d time.Duration, done func([]byte) bool) ([]byte, error) {
	for !done(got) {
		if err := ctx.Err(); err != nil {
			return got, err
		}
		left := d - time.Since(start)
		if left <= 0 {
			return got, nil
		}
		// Short slices so a cancelled ctx is noticed.
		if err := pr.port.SetReadTimeout(min(left, 50*time.Millisecond)); err != nil {
			return got, err
		}
		n, err := pr.port.Read(pr.buf[:])
		got = append(got, pr.buf[:n]...)
		if err != nil && !serialport.IsTimeout(err) {
			return got, err
		}
	}
	return got, nil
}

// heard counts bytes that answered no query, keeping the first maxChatter.
// An echo of the query (a half-duplex RS-485 adapter) is not counted.
func (pr *prober) heard(b []byte) {
	b = bytes.TrimPrefix(b, pr.last)
	pr.noise += len(b)
	if n := min(len(b), maxChatter-pr.kept); n > 0 {
		pr.chatter = append(pr.chatter, chunk{pr.baud, bytes.Clone(b[:n])})
		pr.kept += n
	}
}

// scanned reports whether the unasked bytes are nothing but scanner lines
// (qrscan.md §2, with one of the common terminators): then it returns the
// rate of the first line and how many there were. A scan's payload may be
// personal data; it is not kept.
func scanned(chatter []chunk) (baud, lines int, ok bool) {
	for _, term := range [][]byte{qrscan.CRLF, qrscan.CR, qrscan.LF} {
		baud, lines, ok = 0, 0, true
		for _, c := range chatter {
			f, err := qrscan.NewFramer(qrscan.FramerConfig{Terminator: term})
			if err != nil {
				return 0, 0, false // cannot happen: a valid terminator
			}
			for _, ev := range f.Feed(nil, time.Time{}, c.b) {
				switch ev.Kind {
				case qrscan.Line:
					if lines == 0 {
						baud = c.baud
					}
					lines++
				case qrscan.Empty:
				default:
					ok = false
				}
			}
			if f.Pending() != 0 {
				ok = false
			}
		}
		if ok && lines > 0 {
			return baud, lines, true
		}
	}
	return 0, 0, false
}

func failed(path string, err error) Result {
	r := Result{Path: path, Kind: Error, Addr: -1, Err: err}
	code, _ := serialport.CodeOf(err)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		r.Detail = "probe interrupted"
	case code == serialport.Busy:
		r.Kind, r.Detail = Busy, "in use by another program (kioskd?): stop kioskd to probe it"
	case code == serialport.NotFound:
		r.Detail = "no such port (unplugged?)"
	case code == serialport.Permission:
		r.Detail = "permission denied: run as root or add the user to the dialout group"
	case code == serialport.Invalid:
		r.Detail = "not a serial port"
	case code == serialport.Disconnected:
		r.Detail = "the device went away while probing"
	default:
		r.Detail = err.Error()
	}
	return r
}
