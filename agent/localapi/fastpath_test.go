package localapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

const testOrigin = "http://127.0.0.1:8080"

// startRaw starts a server for raw-connection tests: with the fast path,
// or with every connection handed to net/http at once (plain).
func startRaw(t *testing.T, ob Outbox, plain bool) *Server {
	t.Helper()
	s, err := New(Options{Listen: "127.0.0.1:0", Token: testToken, IDSecret: []byte("site"), Outbox: ob,
		Protector: fakeProtector{sealing: true}, AgentID: "kiosk-1", Version: "test", MaxBody: 4 << 10,
		AllowedOrigins: []string{testOrigin}, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	s.plainHTTP = plain
	run(t, s)
	return s
}

// rawReq builds a request head from lines (CRLF-joined) and a body.
func rawReq(body string, lines ...string) string {
	return strings.Join(lines, "\r\n") + "\r\n\r\n" + body
}

func txHead(body string, extra ...string) []string {
	return append([]string{"POST /v1/transactions HTTP/1.1", "Host: 127.0.0.1",
		"Authorization: Bearer " + testToken, "Content-Length: " + strconv.Itoa(len(body))}, extra...)
}

// exchange writes each of writes on one connection (in order, one write
// each), closes its sending side and reads every response (but 1xx) until
// the server closes the connection. Each response is rendered as status,
// headers but Date (sorted) and body, with random transaction ids masked.
func exchange(t *testing.T, addr string, writes ...string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if _, err := io.WriteString(c, w); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var got []string
	for {
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			return got // closed between responses
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode < 200 {
			continue
		}
		got = append(got, renderResponse(res, b))
	}
}

var randomID = regexp.MustCompile(`"id":"tx-[0-9a-f]{32}"`)

func renderResponse(res *http.Response, body []byte) string {
	var keys []string
	for k := range res.Header {
		if k != "Date" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d", res.StatusCode)
	for _, k := range keys {
		fmt.Fprintf(&b, "|%s: %s", k, strings.Join(res.Header[k], ", "))
	}
	if res.Close {
		b.WriteString("|close")
	}
	fmt.Fprintf(&b, "|%s", randomID.ReplaceAll(body, []byte(`"id":"tx-random"`)))
	return b.String()
}

// TestFastPathAnswersAsNetHTTP sends the same requests, in the same order,
// to a server with the fast path and to one serving everything with
// net/http, and wants the same responses (Date aside), byte for byte in
// status, headers and body, with the fast path answering exactly the
// plain requests.
func TestFastPathAnswersAsNetHTTP(t *testing.T) {
	t.Parallel()
	other := strings.Replace(tx, `"pages":2`, `"pages":3`, 1)
	bad := `{"type":"x","service_code":"y","outcome":"done","started_at":"","ended_at":""}`
	big := strings.Repeat(" ", 5<<10) + tx
	chunked := strconv.FormatInt(int64(len(tx)), 16) + "\r\n" + tx + "\r\n0\r\n\r\n"
	cases := []struct {
		name   string
		writes []string
		fast   int // requests the fast path answers
	}{
		{"created with a key", []string{rawReq(tx, txHead(tx, "Idempotency-Key: k1")...)}, 1},
		{"replayed", []string{rawReq(tx, txHead(tx, "Idempotency-Key: k1")...)}, 1},
		{"key reused with another body", []string{rawReq(other, txHead(other, "Idempotency-Key: k1")...)}, 1},
		{"created without a key", []string{rawReq(tx, txHead(tx)...)}, 1},
		{"invalid body", []string{rawReq(bad, txHead(bad)...)}, 1},
		{"not JSON", []string{rawReq("{", txHead("{")...)}, 1},
		{"empty body", []string{rawReq("", txHead("")...)}, 1},
		{"browser-like headers, allowed origin", []string{rawReq(tx, "POST /v1/transactions HTTP/1.1", "host: 127.0.0.1:7788",
			"connection: Keep-Alive", "content-type: application/json", "AUTHORIZATION:Bearer "+testToken,
			"Origin: "+testOrigin, "User-Agent: Mozilla/5.0 (X11; Linux x86_64)", "Accept: */*",
			"Sec-Fetch-Mode: cors", "Accept-Language: zh-CN,zh;q=0.9", "idempotency-key:   k2  ",
			"CONTENT-LENGTH: "+strconv.Itoa(len(tx)))}, 1},
		{"other origin", []string{rawReq(tx, txHead(tx, "Origin: http://example.com", "Idempotency-Key: k3")...)}, 1},
		{"pipelined", []string{rawReq(tx, txHead(tx, "Idempotency-Key: k4")...) + rawReq(tx, txHead(tx, "Idempotency-Key: k5")...)}, 2},
		{"head in pieces", []string{"POST /v1/trans", "actions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + testToken,
			"\r\nIdempotency-Key: k6\r\nContent-Length: " + strconv.Itoa(len(tx)) + "\r\n", "\r\n" + tx[:10], tx[10:]}, 1},
		{"fast, then another route, then net/http", []string{rawReq(tx, txHead(tx, "Idempotency-Key: k7")...),
			rawReq("", "GET /v1/health HTTP/1.1", "Host: 127.0.0.1", "Authorization: Bearer "+testToken) +
				rawReq(tx, txHead(tx, "Idempotency-Key: k8")...)}, 1},
		{"wrong token", []string{rawReq(tx, "POST /v1/transactions HTTP/1.1", "Host: 127.0.0.1",
			"Authorization: Bearer "+strings.Repeat("0", len(testToken)), "Content-Length: "+strconv.Itoa(len(tx)))}, 0},
		{"no token", []string{rawReq(tx, "POST /v1/transactions HTTP/1.1", "Host: 127.0.0.1", "Content-Length: "+strconv.Itoa(len(tx)))}, 0},
		{"two tokens", []string{rawReq(tx, txHead(tx, "Authorization: Bearer "+testToken)...)}, 0},
		{"over MaxBody", []string{rawReq(big, txHead(big)...)}, 0},
		{"chunked", []string{rawReq(chunked, "POST /v1/transactions HTTP/1.1", "Host: 127.0.0.1",
			"Authorization: Bearer "+testToken, "Transfer-Encoding: chunked", "Idempotency-Key: k9")}, 0},
		{"expect continue", []string{rawReq(tx, txHead(tx, "Expect: 100-continue", "Idempotency-Key: k10")...)}, 0},
		{"connection close", []string{rawReq(tx, txHead(tx, "Connection: close", "Idempotency-Key: k11")...)}, 0},
		{"HTTP/1.0", []string{rawReq(tx, "POST /v1/transactions HTTP/1.0", "Host: 127.0.0.1",
			"Authorization: Bearer "+testToken, "Idempotency-Key: k12", "Content-Length: "+strconv.Itoa(len(tx)))}, 0},
		{"no Host", []string{rawReq(tx, "POST /v1/transactions HTTP/1.1",
			"Authorization: Bearer "+testToken, "Content-Length: "+strconv.Itoa(len(tx)))}, 0},
		{"space before colon", []string{rawReq(tx, txHead(tx, "Idempotency-Key : k13")...)}, 0},
		{"folded header", []string{rawReq(tx, txHead(tx, "X-Note: a", " b")...)}, 0},
		{"two lengths", []string{rawReq(tx, txHead(tx, "Content-Length: 3")...)}, 0},
		{"two keys", []string{rawReq(tx, txHead(tx, "Idempotency-Key: k14", "Idempotency-Key: k15")...)}, 0},
		{"key too long", []string{rawReq(tx, txHead(tx, "Idempotency-Key: "+strings.Repeat("k", 256))...)}, 0},
		{"non-ASCII value", []string{rawReq(tx, txHead(tx, "X-Name: caf\xc3\xa9", "Idempotency-Key: k16")...)}, 0},
		{"query string", []string{rawReq(tx, append([]string{"POST /v1/transactions?x=1 HTTP/1.1"}, txHead(tx, "Idempotency-Key: k17")[1:]...)...)}, 0},
		{"lower-case method", []string{rawReq(tx, append([]string{"post /v1/transactions HTTP/1.1"}, txHead(tx)[1:]...)...)}, 0},
		{"preflight", []string{rawReq("", "OPTIONS /v1/transactions HTTP/1.1", "Host: 127.0.0.1", "Origin: "+testOrigin,
			"Access-Control-Request-Method: POST")}, 0},
		{"signed length", []string{rawReq(tx, append(txHead(tx)[:3], "Content-Length: +"+strconv.Itoa(len(tx)))...)}, 0},
	}
	fastOB, plainOB := &fakeOutbox{}, &fakeOutbox{}
	fast, plain := startRaw(t, fastOB, false), startRaw(t, plainOB, true)
	for _, c := range cases {
		before := fast.fastServed.Load()
		got := exchange(t, fast.Addr().String(), c.writes...)
		served := int(fast.fastServed.Load() - before)
		want := exchange(t, plain.Addr().String(), c.writes...)
		if len(want) == 0 {
			t.Errorf("%s: no response", c.name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: fast path answered\n  %q\nnet/http answered\n  %q", c.name, got, want)
		}
		if served != c.fast {
			t.Errorf("%s: the fast path answered %d requests, want %d", c.name, served, c.fast)
		}
	}
	if got, want := len(fastOB.records()), len(plainOB.records()); got != want {
		t.Errorf("stored %d records with the fast path, %d without", got, want)
	}
	if n := fast.fastServed.Load(); n < 10 {
		t.Errorf("the fast path answered %d requests in all", n)
	}

	// The outbox failing: 503 from both.
	fastOB.mu.Lock()
	fastOB.fail = errors.New("disk full")
	fastOB.mu.Unlock()
	plainOB.mu.Lock()
	plainOB.fail = errors.New("disk full")
	plainOB.mu.Unlock()
	req := rawReq(tx, txHead(tx, "Idempotency-Key: k99")...)
	got, want := exchange(t, fast.Addr().String(), req), exchange(t, plain.Addr().String(), req)
	if !slices.Equal(got, want) || len(got) != 1 || !strings.HasPrefix(got[0], "503|") {
		t.Errorf("outbox failing: fast path %q, net/http %q", got, want)
	}
}

// blockingOutbox holds every Append until release is closed.
type blockingOutbox struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	n       uint64
}

func (o *blockingOutbox) Append(ctx context.Context, r wire.Record) (uint64, error) {
	o.entered <- struct{}{}
	<-o.release
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	return o.n, nil
}

// TestFastPathShutdown: at shutdown an idle fast-path connection is
// closed at once, a request in flight still gets its 201 (the record was
// handed to the outbox), and Run returns only after that.
func TestFastPathShutdown(t *testing.T) {
	t.Parallel()
	ob := &blockingOutbox{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s, err := New(Options{Listen: "127.0.0.1:0", Token: testToken, IDSecret: []byte("site"), Outbox: ob,
		Protector: fakeProtector{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		close(ob.release)
		<-done
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	busy, idle := dial(), dial()
	defer busy.Close()
	defer idle.Close()
	// The idle connection serves one request first, so it is known to
	// the fast path before shutdown.
	noCred := `{"type":"t","service_code":"s","outcome":"completed","started_at":"2026-05-01T09:30:00Z","ended_at":"2026-05-01T09:31:00Z"}`
	if _, err := io.WriteString(idle, rawReq(noCred, txHead(noCred)...)); err != nil {
		t.Fatal(err)
	}
	<-ob.entered
	ob.release <- struct{}{}
	idleBR := bufio.NewReader(idle)
	res, err := http.ReadResponse(idleBR, nil)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("first request: %v, %v", res, err)
	}
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(busy, rawReq(noCred, txHead(noCred)...)); err != nil {
		t.Fatal(err)
	}
	<-ob.entered // the busy request is in the outbox
	cancel()
	if _, err := idleBR.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection at shutdown: read %v, want EOF", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a request in flight", err)
	default:
	}
	ob.release <- struct{}{}
	busyBR := bufio.NewReader(busy)
	res, err = http.ReadResponse(busyBR, nil)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("request in flight at shutdown: %v, %v", res, err)
	}
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatal(err)
	}
	if _, err := busyBR.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("busy connection after its response at shutdown: read %v, want EOF", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	done <- nil // for the deferred cleanup
}

// FuzzParseFastRequest: whatever head the fast path accepts, net/http
// reads as the same request: POST /v1/transactions with that body length,
// key, origin and token, kept alive, with no transfer coding.
func FuzzParseFastRequest(f *testing.F) {
	body := `{"a":1}`
	f.Add([]byte(rawReq(body, txHead(body, "Idempotency-Key: k", "Origin: "+testOrigin)...)))
	f.Add([]byte(rawReq(body, txHead(body, "Connection: keep-alive", "X-A:\tb c\t")...)))
	f.Add([]byte(rawReq(body, txHead(body, "Transfer-Encoding: chunked")...)))
	f.Add([]byte(rawReq(body, "POST /v1/transactions HTTP/1.1", "Host: [::1]:7788", "Content-Length: 007",
		"authorization: Bearer "+testToken)))
	f.Add([]byte("POST /v1/transactions HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Fuzz(func(t *testing.T, buf []byte) {
		req, complete, ok := parseFastRequest(buf, []byte(testToken), 4<<10)
		if !ok {
			return
		}
		if !complete || req.headLen > len(buf) || req.bodyLen < 0 || req.bodyLen > 4<<10 {
			t.Fatalf("accepted %q as %+v, complete %v", buf, req, complete)
		}
		in := append(slices.Clip(buf[:req.headLen]), bytes.Repeat([]byte("x"), int(req.bodyLen))...)
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatalf("fast path accepted %q; net/http: %v", buf[:req.headLen], err)
		}
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/v1/transactions" || r.URL.RawQuery != "" || r.ProtoMinor != 1:
			t.Fatalf("net/http read %s %s %s", r.Method, r.URL, r.Proto)
		case r.ContentLength != req.bodyLen || len(r.TransferEncoding) > 0 || r.Close:
			t.Fatalf("net/http read length %d (fast %d), coding %v, close %v", r.ContentLength, req.bodyLen, r.TransferEncoding, r.Close)
		case r.Header.Get("Idempotency-Key") != string(req.key) || r.Header.Get("Origin") != string(req.origin):
			t.Fatalf("net/http read key %q origin %q; fast %q %q", r.Header.Get("Idempotency-Key"), r.Header.Get("Origin"), req.key, req.origin)
		case len(r.Header.Values("Authorization")) != 1 || r.Header.Get("Authorization") != "Bearer "+testToken:
			t.Fatalf("net/http read %d Authorization headers", len(r.Header.Values("Authorization")))
		case r.Host == "" || r.Header.Get("Expect") != "":
			t.Fatalf("net/http read host %q, expect %q", r.Host, r.Header.Get("Expect"))
		}
	})
}

// TestFastPathBodyBufferReuse: a connection's body buffer is reused, so a
// stored record must not share bytes with the request body: after a
// shorter second request on the same connection, the first record still
// carries its own details.
func TestFastPathBodyBufferReuse(t *testing.T) {
	t.Parallel()
	ob := &fakeOutbox{}
	s := startRaw(t, ob, false)
	long := strings.Replace(tx, `"pages":2`, `"pages":2,"note":"`+strings.Repeat("a", 300)+`"`, 1)
	got := exchange(t, s.Addr().String(), rawReq(long, txHead(long)...)+rawReq(tx, txHead(tx)...))
	if len(got) != 2 || !strings.HasPrefix(got[0], "201|") || !strings.HasPrefix(got[1], "201|") {
		t.Fatalf("answers %q", got)
	}
	recs := ob.records()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	if !bytes.Contains(recs[0].Body, []byte(strings.Repeat("a", 300))) || bytes.Contains(recs[1].Body, []byte("note")) {
		t.Errorf("records share bytes with the reused body buffer:\n%s\n%s", recs[0].Body, recs[1].Body)
	}
}
