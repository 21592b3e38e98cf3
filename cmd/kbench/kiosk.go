package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/agent/localapi"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// kioskClients is the number of concurrent HTTP clients (issue 5 part 5).
const kioskClients = 32

// kioskSizes bounds one kiosk measurement: it stops at whichever of
// requests or limit comes first.
type kioskSizes struct {
	requests     int           // POSTs against the real outbox
	baseRequests int           // POSTs against the one-Update-per-request baseline, per half
	limit        time.Duration // per measurement (each baseline half gets half)
}

func kioskSizesFor(cfg Config) kioskSizes {
	if cfg.Quick {
		return kioskSizes{requests: 20_000, baseRequests: 1_000, limit: 4 * time.Second}
	}
	return kioskSizes{requests: 60_000, baseRequests: 6_000, limit: 8 * time.Second}
}

// kioskSuite measures the kiosk's local API (issue 5 part 5, "kiosk"):
//
//   - kiosk/transactions: 201s per second from POST /v1/transactions over
//     real HTTP on loopback (the agent's local API server: its transaction
//     fast path, net/http for everything else), 32 keep-alive
//     clients in the same process (a minimal HTTP/1.1 client, like wrk's:
//     both share the machine's cores), each body carrying a credential (so
//     the keyed hash runs) and a unique Idempotency-Key, the server backed
//     by a real sync/outbox with default options;
//     baseline the same server and clients with an Outbox doing one bbolt
//     Update (one commit) per Append, measured in two halves before and
//     after.
//   - kiosk/latency_p50_ms, kiosk/latency_p99_ms: client-side latency to
//     the 201 in the same runs; baseline the baseline run's.
func kioskSuite(ctx context.Context, cfg Config) ([]Row, error) {
	return kioskRows(ctx, cfg, kioskSizesFor(cfg))
}

// kioskRows runs the kiosk suite with the given sizes.
func kioskRows(ctx context.Context, cfg Config, sz kioskSizes) ([]Row, error) {
	cfg.progressf("kiosk: baseline, one bbolt Update per request (%d requests, first half)", sz.baseRequests)
	baseA, err := measureKiosk(ctx, cfg, openBoltOutbox, sz.baseRequests, sz.limit/2)
	if err != nil {
		return nil, fmt.Errorf("bbolt baseline: %w", err)
	}
	cfg.progressf("kiosk: sync/outbox, %d clients (%d requests)", kioskClients, sz.requests)
	ob, err := measureKiosk(ctx, cfg, openRealOutbox, sz.requests, sz.limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	cfg.progressf("kiosk: baseline, one bbolt Update per request (%d requests, second half)", sz.baseRequests)
	baseB, err := measureKiosk(ctx, cfg, openBoltOutbox, sz.baseRequests, sz.limit/2)
	if err != nil {
		return nil, fmt.Errorf("bbolt baseline: %w", err)
	}
	base := combine(baseA, baseB)

	const s = "kiosk"
	perRequest := "same API and clients, one bbolt Update per request"
	return []Row{
		newRow(s, "transactions", ob.rate, "tx/s", base.rate, perRequest),
		newRow(s, "latency_p50_ms", ms(ob.p50), "ms", ms(base.p50), perRequest),
		newRow(s, "latency_p99_ms", ms(ob.p99), "ms", ms(base.p99), perRequest),
	}, nil
}

// kioskOutbox is a localapi.Outbox that the measurement closes.
type kioskOutbox interface {
	localapi.Outbox
	Close() error
}

// openRealOutbox opens sync/outbox with default options in dir.
func openRealOutbox(dir string) (kioskOutbox, error) {
	return outbox.Open(outbox.Options{Path: filepath.Join(dir, "outbox.db")})
}

// boltOutbox is the naive durable outbox: one bbolt Update (one commit:
// two fdatasyncs) per Append, bbolt serialising the writers.
type boltOutbox struct {
	db *bolt.DB
}

var boltOutboxBucket = []byte("records")

func openBoltOutbox(dir string) (kioskOutbox, error) {
	db, err := bolt.Open(filepath.Join(dir, "baseline.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltOutboxBucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, err
	}
	return &boltOutbox{db: db}, nil
}

func (b *boltOutbox) Append(ctx context.Context, r wire.Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var seq uint64
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltOutboxBucket)
		var err error
		if seq, err = bk.NextSequence(); err != nil {
			return err
		}
		r.Seq = seq
		val, err := wire.MarshalRecord(r)
		if err != nil {
			return err
		}
		key := make([]byte, 8)
		for i := range 8 {
			key[i] = byte(seq >> (56 - 8*i))
		}
		return bk.Put(key, val)
	})
	return seq, err
}

func (b *boltOutbox) Close() error { return b.db.Close() }

// appendKioskBody appends a realistic POST /v1/transactions body: an
// ID-card credential (hashed by the server) and a few details.
func appendKioskBody(dst []byte, i int) []byte {
	dst = append(dst, `{"type":"social-security.certificate","service_code":"SS-CERT-07","outcome":"completed",`+
		`"started_at":"2026-05-01T09:30:00.123+08:00","ended_at":"2026-05-01T09:31:12.456+08:00",`+
		`"credential":{"kind":"idcard","number":"46010519`...)
	dst = appendZeroPadded(dst, i%10_000_000_000, 10)
	dst = append(dst, `"},"details":{"window":"kiosk-3","pages":2,"language":"zh-CN","receipt":true,"queue_ticket":"A`...)
	dst = appendZeroPadded(dst, i%10_000, 4)
	return append(dst, `"}}`...)
}

// appendZeroPadded appends n >= 0 in decimal, zero-padded to width digits
// (as fmt's %0<width>d; the load generator's CPU is charged to the same
// cores as the server, so it avoids fmt).
func appendZeroPadded(dst []byte, n, width int) []byte {
	var buf [20]byte
	d := strconv.AppendInt(buf[:0], int64(n), 10)
	for range width - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

// measureKiosk starts a local API on loopback backed by the outbox open
// returns (in a fresh directory, with a generated site key and token
// file), warms it up, and has kioskClients clients POST transactions until
// requests 201s came back or limit passed; each request is timed.
func measureKiosk(ctx context.Context, cfg Config, open func(dir string) (kioskOutbox, error), requests int, limit time.Duration) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	dir, err := cfg.tempDir("kiosk")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)

	token, err := localapi.LoadOrCreateToken(filepath.Join(dir, "token"))
	if err != nil {
		return result{}, err
	}
	key, err := privacy.NewSiteKey()
	if err != nil {
		return result{}, err
	}
	keyFile := filepath.Join(dir, "site.key")
	if err := privacy.WriteSiteKey(keyFile, key); err != nil {
		return result{}, err
	}
	if key, err = privacy.LoadSiteKey(keyFile); err != nil {
		return result{}, err
	}
	prot, err := privacy.NewProtector(key, nil)
	if err != nil {
		return result{}, err
	}

	ob, err := open(dir)
	if err != nil {
		return result{}, err
	}
	closeOutbox := sync.OnceValue(ob.Close)
	defer closeOutbox() // covers early returns; the explicit call below reports its error

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	srv, err := localapi.New(localapi.Options{Listener: ln, Token: token, IDSecret: []byte(token),
		Outbox: ob, Protector: prot, AgentID: "kbench", Version: "kbench"})
	if err != nil {
		_ = ln.Close()
		return result{}, err
	}
	defer srv.Close()
	runCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Run(runCtx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopServer()
		return <-serveErr
	}
	defer stop() //nolint:errcheck // the explicit call below reports its error

	addr := srv.Addr().String()
	pool, err := dialKioskConns(ctx, addr, token, kioskClients)
	if err != nil {
		return result{}, err
	}
	defer pool.close()
	var next atomic.Int64
	post := func(ctx context.Context) error {
		c := <-pool.conns
		defer func() { pool.conns <- c }()
		return c.post(int(next.Add(1)))
	}

	// Warm-up: opens the keep-alive connections and the outbox's files.
	if _, err := runProducers(ctx, kioskClients, 4*kioskClients, time.Minute, post, nil); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}

	lat := make([][]time.Duration, kioskClients)
	// The outbox's own counters tell where the time goes: group size, and
	// the share of the run spent inside commits (the rest the committer
	// waits for records).
	statsOf := func() (outbox.Stats, bool) {
		if o, ok := ob.(*outbox.Outbox); ok {
			return o.Stats(), true
		}
		return outbox.Stats{}, false
	}
	before, isOutbox := statsOf()
	start := time.Now()
	n, err := runProducers(ctx, kioskClients, requests, limit, post, lat)
	elapsed := time.Since(start)
	if err != nil {
		return result{}, err
	}
	if after, _ := statsOf(); isOutbox && after.Commits > before.Commits {
		commits := after.Commits - before.Commits
		busy := after.CommitTime - before.CommitTime
		cfg.progressf("kiosk: outbox: %d commits, %.1f records each, %.0f µs each, committing %.0f%% of the run",
			commits, float64(after.Appended-before.Appended)/float64(commits),
			float64(busy.Microseconds())/float64(commits), 100*busy.Seconds()/elapsed.Seconds())
	}
	if err := stop(); err != nil {
		return result{}, fmt.Errorf("local API: %w", err)
	}
	if err := closeOutbox(); err != nil {
		return result{}, fmt.Errorf("close outbox: %w", err)
	}
	all := slices.Concat(lat...)
	res := result{records: n, elapsed: elapsed, rate: float64(n) / elapsed.Seconds(), lat: all}
	res.p50, res.p99 = percentiles(all)
	if n == 0 {
		return res, errors.New("no transaction completed")
	}
	return res, nil
}

// kioskConns are the clients' keep-alive HTTP/1.1 connections, one per
// client: a minimal client (like wrk's) that writes each request in one
// write and reads the response's status line, headers and
// Content-Length body, so the measurement charges the 2 shared cores with
// the server's work rather than net/http client machinery.
type kioskConns struct {
	conns chan *kioskConn
	all   []*kioskConn
}

func dialKioskConns(ctx context.Context, addr, token string, n int) (*kioskConns, error) {
	p := &kioskConns{conns: make(chan *kioskConn, n)}
	var d net.Dialer
	for range n {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			p.close()
			return nil, err
		}
		c := &kioskConn{conn: nc, br: bufio.NewReaderSize(nc, 4096),
			head: "POST /v1/transactions HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + token +
				"\r\nContent-Type: application/json\r\nIdempotency-Key: kbench-"}
		p.all = append(p.all, c)
		p.conns <- c
	}
	return p, nil
}

func (p *kioskConns) close() {
	for _, c := range p.all {
		_ = c.conn.Close()
	}
}

// kioskConn is one client's connection.
type kioskConn struct {
	conn     net.Conn
	br       *bufio.Reader
	head     string // request line and fixed headers, up to the Idempotency-Key value
	req      []byte
	body     []byte
	deadline time.Time // the connection's deadline, renewed when half of it is left
}

// kioskRequestTimeout bounds one request on a connection.
const kioskRequestTimeout = 30 * time.Second

// post sends transaction i (its Idempotency-Key is "kbench-<i>") and
// reads the response: an error unless it is a 201.
func (c *kioskConn) post(i int) error {
	c.body = appendKioskBody(c.body[:0], i)
	r := append(c.req[:0], c.head...)
	r = strconv.AppendInt(r, int64(i), 10)
	r = append(r, "\r\nContent-Length: "...)
	r = strconv.AppendInt(r, int64(len(c.body)), 10)
	r = append(r, "\r\n\r\n"...)
	r = append(r, c.body...)
	c.req = r
	// Every request gets at least half of kioskRequestTimeout; renewing
	// the deadline only then keeps timer updates off the hot path.
	if now := time.Now(); c.deadline.Sub(now) < kioskRequestTimeout/2 {
		c.deadline = now.Add(kioskRequestTimeout)
		if err := c.conn.SetDeadline(c.deadline); err != nil {
			return err
		}
	}
	if _, err := c.conn.Write(r); err != nil {
		return err
	}
	status, body, err := readKioskResponse(c.br, c.body[:0])
	c.body = body
	if err != nil {
		return err
	}
	if status != http.StatusCreated {
		return fmt.Errorf("POST /v1/transactions: %d: %s", status, bytes.TrimSpace(body))
	}
	return nil
}

// readKioskResponse reads one HTTP/1.1 response with a Content-Length
// body (appended to buf) from br and returns its status. The connection
// must stay usable: a response that closes it or has no length is an
// error.
func readKioskResponse(br *bufio.Reader, buf []byte) (status int, body []byte, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, buf, err
	}
	proto, rest, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(rest) < 3 {
		return 0, buf, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(rest[:3]))
	if err != nil {
		return 0, buf, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return status, buf, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, val, _ := bytes.Cut(line, []byte(":"))
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(val)); err != nil || length < 0 {
				return status, buf, fmt.Errorf("bad Content-Length %q", val)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, buf, fmt.Errorf("unexpected Transfer-Encoding %q", val)
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(val, []byte("close")):
			return status, buf, errors.New("the server closes the connection")
		}
	}
	if length < 0 {
		return status, buf, errors.New("response without Content-Length")
	}
	buf = slices.Grow(buf[:0], length)[:length]
	if _, err := io.ReadFull(br, buf); err != nil {
		return status, buf, err
	}
	return status, buf, nil
}
