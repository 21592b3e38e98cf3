package localapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The transaction fast path. POST /v1/transactions is the one hot route
// (a kiosk records every completed service through it, and kbench kiosk
// measures it), and net/http spends more on each of those requests than
// the handler does: a background-read goroutine, a deadline set and reset,
// header maps, a response writer. So the server reads every connection
// itself first. While the requests on a connection are plain, authorised
// POST /v1/transactions with a Content-Length body (see fastRequest for
// the exact subset), it answers them itself, through the same transact as
// the net/http handler, with the same statuses, bodies and headers. The
// first request that is anything else — another route, a preflight, a
// WebSocket upgrade, a wrong token, chunked or oversized body, Expect,
// Connection: close, HTTP/1.0, a header it does not parse strictly — is
// left unread and the connection, with every byte it buffered, is handed
// to net/http, which serves it from then on. The fast path therefore never
// decides anything net/http would decide differently: it either answers
// exactly as the handler would, or it does not answer at all.

// fastBufSize is the fast path's read buffer: a request head that does
// not fit in it goes to net/http.
const fastBufSize = 4096

// readHeaderTimeout bounds reading a request head once its first byte
// arrived: net/http's ReadHeaderTimeout, and the fast path's.
const readHeaderTimeout = 10 * time.Second

// fastRequest is the part of a request head the fast path uses.
type fastRequest struct {
	headLen int    // bytes of the head, through the blank line
	bodyLen int64  // Content-Length
	key     []byte // Idempotency-Key (aliases the head; nil when absent)
	origin  []byte // Origin (aliases the head; nil when absent)
}

var (
	fastRequestLine = []byte("POST /v1/transactions HTTP/1.1\r\n")
	crlf            = []byte("\r\n")
	bearerPrefix    = []byte("Bearer ")
)

// parseFastRequest parses the request head at the start of buf (the
// bytes buffered so far). ok is false when buf does not start with a
// complete head the fast path serves: a different request line, a head
// not yet complete, or any header outside the accepted subset:
//
//   - request line exactly "POST /v1/transactions HTTP/1.1";
//   - every header line "Name: value" with a token name, a value of
//     visible characters, spaces and tabs, and CRLF line ends (no
//     continuation lines);
//   - exactly one Host (of host characters), Content-Length (digits, at
//     most maxBody) and Authorization ("Bearer " and token);
//   - at most one Idempotency-Key (at most 255 bytes) and Origin;
//   - no Transfer-Encoding, Expect, Upgrade or Trailer, and Connection
//     only "keep-alive".
//
// complete reports whether buf holds a whole head (through the blank
// line), whether or not the fast path serves it.
func parseFastRequest(buf []byte, token []byte, maxBody int64) (req fastRequest, complete, ok bool) {
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return req, false, false
	}
	req.headLen = end + 4
	if !bytes.HasPrefix(buf, fastRequestLine) {
		return req, true, false
	}
	lines := buf[len(fastRequestLine) : end+2]
	var hosts, lengths, auths, keys, origins int
	authorised := false
	req.bodyLen = -1
	for len(lines) > 0 {
		i := bytes.Index(lines, crlf)
		line := lines[:i]
		lines = lines[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return req, true, false
		}
		name, val := line[:colon], trimOWS(line[colon+1:])
		if !isFieldValue(val) {
			return req, true, false
		}
		switch {
		case equalFold(name, "host"):
			hosts++
			if !isHost(val) {
				return req, true, false
			}
		case equalFold(name, "content-length"):
			lengths++
			n, ok := parseLength(val)
			if !ok || n > maxBody {
				return req, true, false
			}
			req.bodyLen = n
		case equalFold(name, "authorization"):
			auths++
			got, ok := bytes.CutPrefix(val, bearerPrefix)
			authorised = ok && len(got) > 0 && subtle.ConstantTimeCompare(got, token) == 1
		case equalFold(name, "idempotency-key"):
			keys++
			req.key = val
		case equalFold(name, "origin"):
			origins++
			req.origin = val
		case equalFold(name, "connection"):
			if !equalFold(val, "keep-alive") {
				return req, true, false
			}
		case equalFold(name, "transfer-encoding"), equalFold(name, "expect"),
			equalFold(name, "upgrade"), equalFold(name, "trailer"):
			return req, true, false
		}
	}
	if hosts != 1 || lengths != 1 || auths != 1 || !authorised || keys > 1 || origins > 1 || len(req.key) > 255 {
		return req, true, false
	}
	return req, true, true
}

// isToken reports whether b is an RFC 9110 token (a header name).
func isToken(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return len(b) > 0
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isFieldValue reports whether v holds only visible ASCII, spaces and
// tabs (stricter than RFC 9110, which also allows obs-text: such a value
// goes to net/http).
func isFieldValue(v []byte) bool {
	for _, c := range v {
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// isHost reports whether v is a plausible Host value: letters, digits and
// ".-:[]" (names, IPv4, bracketed IPv6, a port).
func isHost(v []byte) bool {
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return len(v) > 0
}

// trimOWS trims spaces and tabs around a header value.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length: 1 to 18 digits.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// handoff is the net.Listener net/http serves: it yields the connections
// the fast path gave up on, their buffered bytes first.
type handoff struct {
	addr net.Addr
	c    chan net.Conn
	once sync.Once
	done chan struct{}
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, c: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.c:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; net/http's Shutdown calls it. Connections handed
// over later are closed by give.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// give hands c to net/http, or closes it when net/http stopped serving.
func (h *handoff) give(c net.Conn) {
	select {
	case h.c <- c:
	case <-h.done:
		_ = c.Close() // net/http is shutting down: as if it closed an idle connection
	}
}

// bufferedConn is a connection whose first bytes were already read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// fastConns tracks the fast path's connections for shutdown: idle ones
// (waiting for a request) are closed at once, busy ones after their
// response.
type fastConns struct {
	mu      sync.Mutex
	idle    map[net.Conn]bool // every connection; true while it waits for a request
	closing bool
	wg      sync.WaitGroup
}

// add registers c; false when shutting down (c is then closed).
func (f *fastConns) add(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		_ = c.Close() // accepted during shutdown
		return false
	}
	f.idle[c] = true
	f.wg.Add(1)
	return true
}

// setIdle marks c idle or busy; false when shutting down (then c must be
// closed, or was closed already if it was idle).
func (f *fastConns) setIdle(c net.Conn, idle bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.idle[c] = idle
	return true
}

// remove forgets c, which its goroutine closed or handed over.
func (f *fastConns) remove(c net.Conn) {
	f.mu.Lock()
	delete(f.idle, c)
	f.mu.Unlock()
	f.wg.Done()
}

// shutdown closes the idle connections and waits until the busy ones
// answered, or ctx ends: then it calls cancel (ending the requests' waits)
// and closes them.
func (f *fastConns) shutdown(ctx context.Context, cancel context.CancelFunc) {
	f.mu.Lock()
	f.closing = true
	for c, idle := range f.idle {
		if idle {
			_ = c.Close() // its goroutine ends on the read error
		}
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	cancel()
	f.mu.Lock()
	for c := range f.idle {
		_ = c.Close() // the grace period is over
	}
	f.mu.Unlock()
	<-done
}

// serveFast accepts connections on ln until it is closed, serving each
// with fastConn. It returns nil once ln is closed, else the accept error.
func (s *Server) serveFast(ctx context.Context, ln net.Listener, h *handoff, conns *fastConns) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// As net/http does: out of file descriptors and the like.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !conns.add(c) {
			continue
		}
		go func() {
			defer conns.remove(c)
			s.fastConn(ctx, c, h, conns)
		}()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// fastConn serves c's requests while they are fast-path requests, then
// hands c to net/http (or closes it on a read error or at shutdown).
func (s *Server) fastConn(ctx context.Context, c net.Conn, h *handoff, conns *fastConns) {
	if s.plainHTTP {
		h.give(c)
		return
	}
	br := bufio.NewReaderSize(c, fastBufSize)
	token := []byte(s.o.Token)
	var out, raw []byte
	for {
		// Wait for a request without a deadline, as net/http does with no
		// IdleTimeout; shutdown closes an idle connection.
		if _, err := br.Peek(1); err != nil {
			_ = c.Close() // the client went away, or shutdown closed it
			return
		}
		if !conns.setIdle(c, false) {
			_ = c.Close() // shutting down: the request is not read, as net/http would not
			return
		}
		req, ok, err := readFastHead(c, br, token, s.o.MaxBody)
		if err != nil {
			_ = c.Close() // a read error or the header timeout
			return
		}
		if !ok {
			h.give(&bufferedConn{Conn: c, r: br})
			return
		}
		var start time.Time
		debug := s.log.Enabled(ctx, slog.LevelDebug)
		if debug {
			start = s.o.Now()
		}
		key, origin := string(req.key), string(req.origin) // copies: the head is about to be discarded
		if _, err := br.Discard(req.headLen); err != nil {
			_ = c.Close() // cannot happen: the head is buffered
			return
		}
		// The body buffer is the connection's: nothing keeps raw once
		// transact returned (the record is built from copies).
		if int64(cap(raw)) < req.bodyLen {
			raw = make([]byte, req.bodyLen)
		}
		raw = raw[:req.bodyLen]
		if _, err := io.ReadFull(br, raw); err != nil {
			_ = c.Close() // the client went away mid-body
			return
		}
		status, body, replayed := s.transact(ctx, raw, key)
		out = s.appendFastResponse(out[:0], status, body, replayed, origin)
		s.fastServed.Add(1) // before the write: a test reading the response then sees it
		if _, err := c.Write(out); err != nil {
			_ = c.Close() // the client went away
			return
		}
		if debug {
			s.log.Debug("request", "method", http.MethodPost, "path", "/v1/transactions", "status", status,
				"ms", s.o.Now().Sub(start).Milliseconds())
		}
		if !conns.setIdle(c, true) {
			_ = c.Close() // shutting down: this connection is done
			return
		}
	}
}

// readFastHead reads until br holds a whole request head (or its buffer
// is full) and parses it. ok is false when the request is not for the
// fast path; the head then stays unread in br.
func readFastHead(c net.Conn, br *bufio.Reader, token []byte, maxBody int64) (req fastRequest, ok bool, err error) {
	deadline := false
	for {
		buf, _ := br.Peek(br.Buffered()) // never fails: the bytes are buffered
		req, complete, ok := parseFastRequest(buf, token, maxBody)
		if complete || br.Buffered() == fastBufSize || !bytes.HasPrefix(fastRequestLine, buf[:min(len(buf), len(fastRequestLine))]) {
			if deadline {
				err = c.SetReadDeadline(time.Time{})
			}
			return req, ok && err == nil, err
		}
		if !deadline {
			// The head came in pieces: bound the wait for the rest.
			if err := c.SetReadDeadline(time.Now().Add(readHeaderTimeout)); err != nil {
				return req, false, err
			}
			deadline = true
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return req, false, err
		}
	}
}

// appendFastResponse appends the response writeRaw and the cors
// middleware would send for status and body.
func (s *Server) appendFastResponse(out []byte, status int, body []byte, replayed bool, origin string) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	if origin != "" && s.allowedOrigin(origin) {
		out = append(out, "\r\nAccess-Control-Allow-Origin: "...)
		out = append(out, origin...)
		out = append(out, "\r\nVary: Origin"...)
	}
	out = append(out, "\r\nCache-Control: no-store\r\nContent-Type: application/json"...)
	if replayed {
		out = append(out, "\r\nIdempotent-Replayed: true"...)
	}
	out = append(out, "\r\nDate: "...)
	out = time.Now().UTC().AppendFormat(out, http.TimeFormat)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)+1), 10)
	out = append(out, "\r\n\r\n"...)
	out = append(out, body...)
	return append(out, '\n')
}
