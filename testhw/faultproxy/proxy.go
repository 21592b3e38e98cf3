package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	chunkSize   = 32 << 10         // read size per direction
	queueChunks = 16               // chunks held per direction before backpressure
	dialTimeout = 5 * time.Second  // to reach the target
	paceSlice   = time.Second / 20 // bandwidth pacing granularity
)

// Stats counts what the proxy did since New.
type Stats struct {
	Accepted   int64 // connections accepted, including refused ones
	Refused    int64 // closed at once because refuse was on
	DialErrors int64 // closed because the target could not be reached
	Active     int   // connections open now
	BytesUp    int64 // bytes forwarded from clients to the target
	BytesDown  int64 // bytes forwarded from the target to clients
	Cuts       int64 // calls to Cut
	CutConns   int64 // connections closed by Cut
}

// Proxy forwards TCP connections from a loopback listener to a target,
// with switchable faults. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	log    *slog.Logger
	ln     net.Listener
	done   chan struct{} // closed by Close

	delay  atomic.Int64 // time.Duration
	bps    atomic.Int64
	refuse atomic.Bool

	mu        sync.Mutex
	blackHole bool
	changed   chan struct{} // closed and replaced when blackHole changes
	links     map[*link]struct{}
	closed    bool

	wg sync.WaitGroup // the accept loop and every connection handler

	accepted, refused, dialErrs, up, down, cuts, cutConns atomic.Int64
}

// New listens on 127.0.0.1 on a free port and forwards every accepted
// connection to target (host:port). A nil logger discards. It returns the
// listen error, if any; the target is not dialled until a client connects.
func New(target string, logger *slog.Logger) (*Proxy, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		target:  target,
		log:     logger.With("component", "faultproxy", "target", target),
		ln:      ln,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		links:   make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the proxy's listening address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns "tcp://" + Addr, the form MQTT clients take.
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

// Cut closes every open connection on both sides; the client and the
// target each see the connection end. New connections are still accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	ls := make([]*link, 0, len(p.links))
	for l := range p.links {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	p.cuts.Add(1)
	p.cutConns.Add(int64(len(ls)))
	for _, l := range ls {
		l.close()
	}
	p.log.Debug("cut", "conns", len(ls))
}

// SetBlackHole turns the black hole on or off. While on, connections are
// accepted and kept open but nothing is forwarded either way, closes
// included: bytes already read are held, then the senders block once the
// per-direction queue and the kernel buffers are full, and a new
// connection is not dialled through to the target. Turning it off delivers
// what was held, in order.
func (p *Proxy) SetBlackHole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blackHole == on {
		return
	}
	p.blackHole = on
	close(p.changed)
	p.changed = make(chan struct{})
}

// SetDelay sets the latency added to each chunk in each direction: a
// chunk read at t is written no earlier than t+d. It applies to chunks
// read after the call; order is always kept. d <= 0 removes it.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(max(d, 0))) }

// SetBandwidth limits each direction of each connection to bytesPerSec;
// 0 or less removes the limit. It applies from the next write.
func (p *Proxy) SetBandwidth(bytesPerSec int) { p.bps.Store(int64(max(bytesPerSec, 0))) }

// SetRefuse makes the proxy close every new connection as soon as it is
// accepted (on) or forward them again (off). Open connections are not
// touched; call Cut as well for a full partition.
func (p *Proxy) SetRefuse(on bool) { p.refuse.Store(on) }

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.links)
	p.mu.Unlock()
	return Stats{
		Accepted: p.accepted.Load(), Refused: p.refused.Load(), DialErrors: p.dialErrs.Load(),
		Active: active, BytesUp: p.up.Load(), BytesDown: p.down.Load(),
		Cuts: p.cuts.Load(), CutConns: p.cutConns.Load(),
	}
}

// Close stops listening, closes every connection and waits for all the
// proxy's goroutines. It is idempotent and returns nil after the first
// call; the first returns the listener's close error, if any.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	ls := make([]*link, 0, len(p.links))
	for l := range p.links {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range ls {
		l.close()
	}
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("faultproxy: close listener: %w", err)
	}
	return nil
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Warn("accept failed; proxy stops accepting", "err", err)
			}
			return
		}
		p.accepted.Add(1)
		if p.refuse.Load() {
			p.refused.Add(1)
			_ = c.Close() // refusing: the client sees the close, nothing to report
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &link{client: c, done: make(chan struct{}), cancel: cancel}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			l.close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(ctx, l)
	}
}

// waitOpen blocks while the black hole is on; it returns false if the
// link ends first.
func (p *Proxy) waitOpen(l *link) bool {
	for {
		p.mu.Lock()
		on, ch := p.blackHole, p.changed
		p.mu.Unlock()
		if !on {
			return true
		}
		select {
		case <-ch:
		case <-l.done:
			return false
		}
	}
}

// serve runs one connection: dial the target, pump both directions, and
// clean up when both are done.
func (p *Proxy) serve(ctx context.Context, l *link) {
	defer p.wg.Done()
	defer func() {
		l.close()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	if !p.waitOpen(l) {
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	s, err := d.DialContext(ctx, "tcp", p.target)
	if err != nil {
		if ctx.Err() == nil {
			p.dialErrs.Add(1)
			p.log.Debug("dial target failed", "err", err)
		}
		return
	}
	if !l.setServer(s) {
		return
	}
	var wg sync.WaitGroup
	for _, dir := range []struct {
		src, dst net.Conn
		n        *atomic.Int64
	}{{l.client, s, &p.up}, {s, l.client, &p.down}} {
		q := make(chan chunk, queueChunks)
		wg.Add(2)
		go func() { defer wg.Done(); p.read(l, dir.src, q) }()
		go func() { defer wg.Done(); p.write(l, dir.dst, q, dir.n) }()
	}
	wg.Wait()
}

// chunk is what a reader hands its writer: data due at a time, or the end
// of the stream (eof for a clean end, which the writer forwards as a
// half-close; otherwise the link is torn down).
type chunk struct {
	data []byte
	due  time.Time
	end  bool
	eof  bool
}

func (p *Proxy) read(l *link, src net.Conn, q chan<- chunk) {
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		due := time.Now().Add(time.Duration(p.delay.Load()))
		if n > 0 {
			select {
			case q <- chunk{data: buf[:n], due: due}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			select {
			case q <- chunk{end: true, eof: errors.Is(err, io.EOF), due: due}:
			case <-l.done:
			}
			return
		}
	}
}

func (p *Proxy) write(l *link, dst net.Conn, q <-chan chunk, n *atomic.Int64) {
	var next time.Time // bandwidth pacing: when the next slice may go
	for {
		var c chunk
		select {
		case c = <-q:
		case <-l.done:
			return
		}
		if !l.sleepUntil(c.due) || !p.waitOpen(l) {
			return
		}
		if c.end {
			if tc, ok := dst.(*net.TCPConn); ok && c.eof {
				if err := tc.CloseWrite(); err == nil {
					return
				}
			}
			l.close()
			return
		}
		for data := c.data; len(data) > 0; {
			size := len(data)
			if bps := p.bps.Load(); bps > 0 {
				size = min(size, max(int(bps*int64(paceSlice)/int64(time.Second)), 1))
				now := time.Now()
				if next.Before(now) {
					next = now
				}
				if !l.sleepUntil(next) {
					return
				}
				next = next.Add(time.Duration(int64(size) * int64(time.Second) / bps))
			}
			m, err := dst.Write(data[:size])
			n.Add(int64(m))
			if err != nil {
				l.close()
				return
			}
			data = data[size:]
		}
	}
}

// link is one proxied connection.
type link struct {
	client net.Conn
	cancel context.CancelFunc // aborts the dial
	done   chan struct{}

	mu     sync.Mutex
	server net.Conn
	closed bool
}

// setServer attaches the dialled target connection; it closes s and
// returns false if the link was closed meanwhile.
func (l *link) setServer(s net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = s.Close() // the link is gone; nobody uses s
		return false
	}
	l.server = s
	return true
}

// close closes both sides once; later calls do nothing.
func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.done)
	l.cancel()
	// Close errors only say the peer went first.
	_ = l.client.Close()
	if l.server != nil {
		_ = l.server.Close()
	}
}

// sleepUntil waits until t; it returns false if the link ends first.
func (l *link) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-l.done:
			return false
		default:
			return true
		}
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-l.done:
		return false
	}
}
