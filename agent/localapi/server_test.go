package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeOutbox is an OnceAppender: keys maps an idempotency key to its
// record's sequence and meta, as sync/outbox's index does.
type fakeOutbox struct {
	mu   sync.Mutex
	recs []wire.Record
	keys map[string]fakeKey
	fail error
}

type fakeKey struct {
	seq  uint64
	meta []byte
}

func (o *fakeOutbox) AppendOnce(ctx context.Context, r wire.Record, key, meta []byte) (uint64, []byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return 0, nil, o.fail
	}
	if k, ok := o.keys[string(key)]; ok {
		return k.seq, append([]byte{}, k.meta...), nil
	}
	o.recs = append(o.recs, r)
	if o.keys == nil {
		o.keys = map[string]fakeKey{}
	}
	o.keys[string(key)] = fakeKey{uint64(len(o.recs)), append([]byte(nil), meta...)}
	return uint64(len(o.recs)), nil, nil
}

// plainOutbox hides fakeOutbox's AppendOnce: an Outbox without a durable
// idempotency index.
type plainOutbox struct{ *fakeOutbox }

func (o plainOutbox) AppendOnce() {} // a different signature: not an OnceAppender

func (o *fakeOutbox) Append(ctx context.Context, r wire.Record) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return 0, o.fail
	}
	o.recs = append(o.recs, r)
	return uint64(len(o.recs)), nil
}

func (o *fakeOutbox) records() []wire.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]wire.Record(nil), o.recs...)
}

type fakeProtector struct{ sealing bool }

func (fakeProtector) Hash(c credential.Credential) string {
	return "h:" + string(c.Kind) + ":" + strings.Repeat("x", len(c.Number))
}
func (p fakeProtector) Seal(raw []byte) (string, error) {
	if !p.sealing {
		return "", nil
	}
	return "sealed:" + string(bytes.ToUpper(raw[:0])) + "opaque", nil
}

type fakeReader struct {
	mu    sync.Mutex
	err   error
	card  Card
	after int // ErrNoCard this many times first
}

func (r *fakeReader) ReadCard(ctx context.Context) (Card, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.after > 0 {
		r.after--
		return Card{}, ErrNoCard
	}
	return r.card, r.err
}

type fakePrinter struct {
	st  PrinterStatus
	err error
	got []Receipt
}

func (p *fakePrinter) Print(ctx context.Context, r Receipt) (PrinterStatus, error) {
	p.got = append(p.got, r)
	return p.st, p.err
}

type fakeHealth struct {
	mu sync.Mutex
	h  []wire.DeviceHealth
}

func (f *fakeHealth) Health() []wire.DeviceHealth {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.DeviceHealth(nil), f.h...)
}

func (f *fakeHealth) set(h []wire.DeviceHealth) {
	f.mu.Lock()
	f.h = h
	f.mu.Unlock()
}

type rig struct {
	srv    *Server
	url    string
	ob     *fakeOutbox
	reader *fakeReader
	print  *fakePrinter
	health *fakeHealth
	logs   *logbuf.Buffer
}

func start(t *testing.T, edit func(*Options)) *rig {
	t.Helper()
	r := &rig{ob: &fakeOutbox{}, reader: &fakeReader{}, print: &fakePrinter{}, health: &fakeHealth{}, logs: &logbuf.Buffer{}}
	o := Options{Listen: "127.0.0.1:0", Token: testToken, IDSecret: []byte("site"), Outbox: r.ob,
		Protector: fakeProtector{sealing: true}, Readers: map[string]CardReader{"id-reader": r.reader},
		Printer: r.print, Health: r.health, AgentID: "kiosk-1", Version: "test", MaxBody: 4 << 10,
		Logger: slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if edit != nil {
		edit(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = s
	r.url = "http://" + s.Addr().String()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	run(t, s) // its cleanup runs before Close's
	return r
}

// run runs s until the test ends; Run must then return nil.
func run(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

type resp struct {
	status int
	body   []byte
	hdr    http.Header
}

func (r resp) code() string {
	var e struct {
		Error apiError `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e) // "" when not an error body
	return e.Error.Code
}

func (g *rig) do(t *testing.T, method, path, token string, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp{res.StatusCode, b, res.Header}
}

const tx = `{"type":"social-security.certificate","service_code":"SS-017","outcome":"completed",
"started_at":"2026-05-01T09:30:00+08:00","ended_at":"2026-05-01T09:31:10+08:00",
"credential":{"kind":"idcard","number":"46010019900101123X"},"details":{"pages":2}}`

func TestToken(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{{"missing", "", 401}, {"wrong", strings.Repeat("f", 64), 401}, {"prefix", testToken[:32], 401}, {"right", testToken, 200}} {
		for _, p := range []string{"/v1/health", "/v1/openapi.json"} {
			r := g.do(t, "GET", p, tc.auth, "")
			if r.status != tc.want {
				t.Errorf("%s %s: %d %s", tc.name, p, r.status, r.body)
			}
			if tc.want == 401 && r.code() != "unauthorized" {
				t.Errorf("%s: code %q", tc.name, r.code())
			}
		}
	}
	// A token that is not "Bearer …" is refused too.
	if r := g.do(t, "GET", "/v1/health", "", "", "Authorization", "Basic "+testToken); r.status != 401 {
		t.Errorf("basic auth: %d", r.status)
	}
	if r := g.do(t, "POST", "/v1/transactions", "", tx); r.status != 401 || len(g.ob.records()) != 0 {
		t.Errorf("unauthenticated transaction: %d, %d records", r.status, len(g.ob.records()))
	}
}

func TestTransactionCreated(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	r := g.do(t, "POST", "/v1/transactions", testToken, tx)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var tr TransactionResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.Seq != 1 || !strings.HasPrefix(tr.ID, "tx-") {
		t.Fatalf("%s: %v", r.body, err)
	}
	recs := g.ob.records()
	if len(recs) != 1 || recs[0].Kind != KindTransaction || recs[0].Class != wire.ClassCritical {
		t.Fatalf("records: %+v", recs)
	}
	if bytes.Contains(recs[0].Body, []byte("46010019900101123X")) {
		t.Fatalf("raw number in the record: %s", recs[0].Body)
	}
	var body map[string]any
	if err := json.Unmarshal(recs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	c := body["credential"].(map[string]any)
	if body["id"] != tr.ID || body["service_code"] != "SS-017" || c["hash"] != "h:idcard:"+strings.Repeat("x", 18) || c["number_sealed"] != "sealed:opaque" {
		t.Errorf("body: %s", recs[0].Body)
	}
	if d := body["details"].(map[string]any); d["pages"] != 2.0 {
		t.Errorf("details: %v", d)
	}
	// Without a hub key nothing is sealed.
	g2 := start(t, func(o *Options) { o.Protector = fakeProtector{} })
	if r := g2.do(t, "POST", "/v1/transactions", testToken, tx); r.status != 201 {
		t.Fatal(r.status)
	}
	if b := g2.ob.records()[0].Body; bytes.Contains(b, []byte("sealed")) || bytes.Contains(b, []byte("123X")) {
		t.Errorf("unsealed body: %s", b)
	}
}

func TestTransactionInvalid(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	edit := func(old, new string) string { return strings.Replace(tx, old, new, 1) }
	cases := []struct{ body, field string }{
		{`not json`, "body"},
		{edit(`"type":"social-security.certificate",`, ""), "type"},
		{edit(`"SS-017"`, `""`), "service_code"},
		{edit(`"completed"`, `"maybe"`), "outcome"},
		{edit(`"2026-05-01T09:30:00+08:00"`, `"yesterday"`), "started_at"},
		{edit(`"2026-05-01T09:31:10+08:00"`, `"2026-05-01T09:00:00+08:00"`), "ended_at"},
		{edit(`"kind":"idcard"`, `"kind":"passport"`), "credential.kind"},
		{edit(`"number":"46010019900101123X"`, `"number":""`), "credential.number"},
		{edit(`{"pages":2}`, `[1,2]`), "details"},
		{edit(`"outcome"`, `"outcomes"`), "outcomes"},
		{edit(`"SS-017"`, `17`), "service_code"},
		{tx + `{}`, "body"},
	}
	for _, tc := range cases {
		r := g.do(t, "POST", "/v1/transactions", testToken, tc.body)
		var e struct{ Error apiError }
		_ = json.Unmarshal(r.body, &e) // checked below
		if r.status != 400 || e.Error.Code != "invalid" || !strings.HasPrefix(e.Error.Message, tc.field) {
			t.Errorf("field %s: %d %s", tc.field, r.status, r.body)
		}
	}
	if n := len(g.ob.records()); n != 0 {
		t.Errorf("%d records stored from invalid bodies", n)
	}
}

func TestTransactionTooLarge(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	big := strings.Replace(tx, `{"pages":2}`, `{"blob":"`+strings.Repeat("a", 5<<10)+`"}`, 1)
	r := g.do(t, "POST", "/v1/transactions", testToken, big)
	if r.status != 413 || r.code() != "too_large" {
		t.Errorf("%d %s", r.status, r.body)
	}
	if r := g.do(t, "POST", "/v1/print", testToken, `{"title":"`+strings.Repeat("a", 5<<10)+`"}`); r.status != 413 {
		t.Errorf("print: %d", r.status)
	}
	if n := len(g.ob.records()); n != 0 {
		t.Errorf("%d records", n)
	}
}

func TestTransactionOutboxUnavailable(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.ob.fail = errors.New("outbox: closed")
	r := g.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "k1")
	if r.status != 503 || r.code() != "outbox_unavailable" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// The failure is not remembered: a retry with the same key succeeds.
	g.ob.mu.Lock()
	g.ob.fail = nil
	g.ob.mu.Unlock()
	if r := g.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "k1"); r.status != 201 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	var first resp
	var wg sync.WaitGroup
	res := make([]resp, 8)
	for i := range res {
		wg.Go(func() { res[i] = g.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "order-77") })
	}
	wg.Wait()
	first = res[0]
	for i, r := range res {
		if r.status != 201 || !bytes.Equal(r.body, first.body) {
			t.Errorf("attempt %d: %d %s, want %s", i, r.status, r.body, first.body)
		}
	}
	if n := len(g.ob.records()); n != 1 {
		t.Fatalf("%d records for one key", n)
	}
	// Same key, different body: 422, nothing stored.
	r := g.do(t, "POST", "/v1/transactions", testToken, strings.Replace(tx, "SS-017", "SS-018", 1), "Idempotency-Key", "order-77")
	if r.status != 422 || r.code() != "idempotency_key_reused" {
		t.Errorf("reused key: %d %s", r.status, r.body)
	}
	// Another key: another record, another id; the id is derived from the key.
	r2 := g.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "order-78")
	var a, b TransactionResponse
	_ = json.Unmarshal(first.body, &a) // zero values fail the check below
	_ = json.Unmarshal(r2.body, &b)
	if r2.status != 201 || a.ID == b.ID || b.Seq != 2 {
		t.Errorf("second key: %s vs %s", first.body, r2.body)
	}
	if len(g.ob.records()) != 2 {
		t.Errorf("records: %d", len(g.ob.records()))
	}
	// A restarted agent (a new server with the same IDSecret) derives the
	// same id for the same key.
	g2 := start(t, nil)
	r3 := g2.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "order-77")
	var c TransactionResponse
	_ = json.Unmarshal(r3.body, &c)
	if c.ID != a.ID {
		t.Errorf("id after restart %q, want %q", c.ID, a.ID)
	}
	// Without a key the ids differ.
	x := g.do(t, "POST", "/v1/transactions", testToken, tx)
	y := g.do(t, "POST", "/v1/transactions", testToken, tx)
	if bytes.Equal(x.body, y.body) {
		t.Error("two keyless transactions got the same response")
	}
}

// TestIdempotencyDurable: after a restart (a new server on the same
// outbox, in-memory cache empty) a retry with the key gets the first
// response from the outbox's index, marked replayed, and stores nothing;
// a different body gets 422. Without an OnceAppender the retry stores a
// second record with the same id (the documented limit).
func TestIdempotencyDurable(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	first := g.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "order-9")
	if first.status != 201 || first.hdr.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s %v", first.status, first.body, first.hdr)
	}
	g2 := start(t, func(o *Options) { o.Outbox = g.ob })
	for range 2 { // the second answer comes from the in-memory cache
		r := g2.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "order-9")
		if r.status != 201 || !bytes.Equal(r.body, first.body) || r.hdr.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry after restart: %d %s %v, want %s replayed", r.status, r.body, r.hdr, first.body)
		}
	}
	g3 := start(t, func(o *Options) { o.Outbox = g.ob })
	r := g3.do(t, "POST", "/v1/transactions", testToken, strings.Replace(tx, "SS-017", "SS-018", 1), "Idempotency-Key", "order-9")
	if r.status != 422 || r.code() != "idempotency_key_reused" {
		t.Fatalf("other body after restart: %d %s", r.status, r.body)
	}
	if r := g3.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "order-9"); r.status != 201 || !bytes.Equal(r.body, first.body) {
		t.Fatalf("the same body after a 422: %d %s", r.status, r.body)
	}
	if n := len(g.ob.records()); n != 1 {
		t.Fatalf("%d records for one key", n)
	}

	plain := plainOutbox{&fakeOutbox{}}
	p1 := start(t, func(o *Options) { o.Outbox = plain })
	a := p1.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "order-9")
	p2 := start(t, func(o *Options) { o.Outbox = plain })
	b := p2.do(t, "POST", "/v1/transactions", testToken, tx, "Idempotency-Key", "order-9")
	var ra, rb TransactionResponse
	_ = json.Unmarshal(a.body, &ra) // zero values fail the check below
	_ = json.Unmarshal(b.body, &rb)
	if a.status != 201 || b.status != 201 || ra.ID != rb.ID || ra.Seq == rb.Seq || len(plain.records()) != 2 {
		t.Fatalf("without an index: %s then %s, %d records", a.body, b.body, len(plain.records()))
	}
}

func TestIdempotencyCacheBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newIdemCache(2, time.Hour, func() time.Time { return now })
	var fp [32]byte
	for _, k := range []string{"a", "b", "c"} {
		e, owner := c.begin(k, fp)
		if !owner {
			t.Fatalf("%s: not owner", k)
		}
		c.finish(e, 201, []byte(k))
	}
	if _, owner := c.begin("a", fp); !owner {
		t.Error("the oldest key survived beyond the bound")
	}
	if e, owner := c.begin("c", fp); owner || string(e.body) != "c" {
		t.Error("a recent key was forgotten")
	}
	now = now.Add(2 * time.Hour)
	if _, owner := c.begin("c", fp); !owner {
		t.Error("an expired key was replayed")
	}
}

func TestCardsRead(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.reader.card = Card{Kind: "idcard", Fields: map[string]any{"name": "张三丰", "number": "46010019900101123X"}}
	g.reader.after = 2
	r := g.do(t, "POST", "/v1/cards/read", testToken, `{"reader":"id-reader","timeout_ms":2000}`)
	var cr CardReadResponse
	if err := json.Unmarshal(r.body, &cr); r.status != 200 || err != nil || cr.Fields["number"] != "46010019900101123X" || cr.Kind != "idcard" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{ErrNoCard, 404, "no_card"}, {ErrReaderOffline, 503, "reader_offline"}, {ErrCardTimeout, 504, "reader_timeout"},
		{ErrCardUnreadable, 422, "card_unreadable"}, {errors.New("idcard: protocol error"), 502, "reader_error"},
	}
	for _, tc := range cases {
		g.reader.mu.Lock()
		g.reader.err = tc.err
		g.reader.mu.Unlock()
		r := g.do(t, "POST", "/v1/cards/read", testToken, `{"reader":"id-reader","timeout_ms":150}`)
		if r.status != tc.status || r.code() != tc.code {
			t.Errorf("%v: %d %s", tc.err, r.status, r.body)
		}
	}
	for body, code := range map[string]string{`{"reader":"nope"}`: "unknown_reader", `{"reader":"id-reader","timeout_ms":-1}`: "invalid", `{"reader":1}`: "invalid"} {
		if r := g.do(t, "POST", "/v1/cards/read", testToken, body); r.status != 400 || r.code() != code {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
	if strings.Contains(g.logs.String(), "123X") || strings.Contains(g.logs.String(), "张") {
		t.Errorf("personal data logged: %s", g.logs.String())
	}
}

func TestPrint(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.print.st = PrinterStatus{PaperNearEnd: true}
	r := g.do(t, "POST", "/v1/print", testToken, `{"title":"Receipt","lines":[{"text":"a","bold":true,"align":"center"}],"qr":"https://x/1","cut":true}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"paper_near_end":true`) {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if p := g.print.got[0]; p.Title != "Receipt" || !p.Lines[0].Bold || p.Lines[0].Align != AlignCenter || p.QR != "https://x/1" || !p.Cut {
		t.Errorf("receipt: %+v", p)
	}
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{{ErrPaperOut, 409, "paper_out"}, {ErrCoverOpen, 409, "cover_open"}, {ErrPrinterOffline, 503, "printer_offline"}, {errors.New("escpos: cutter"), 502, "printer_error"}} {
		g.print.err = tc.err
		r := g.do(t, "POST", "/v1/print", testToken, `{"title":"x"}`)
		if r.status != tc.status || r.code() != tc.code || !strings.Contains(string(r.body), `"status":{`) {
			t.Errorf("%v: %d %s", tc.err, r.status, r.body)
		}
	}
	for _, body := range []string{`{}`, `{"lines":[{"text":"a","align":"middle"}]}`, `{"title":"x","color":"red"}`} {
		if r := g.do(t, "POST", "/v1/print", testToken, body); r.status != 400 {
			t.Errorf("%s: %d", body, r.status)
		}
	}
	g2 := start(t, func(o *Options) { o.Printer = nil })
	if r := g2.do(t, "POST", "/v1/print", testToken, `{"title":"x"}`); r.status != 503 || r.code() != "no_printer" {
		t.Errorf("no printer: %d %s", r.status, r.body)
	}
}

func TestHealthAndNotFound(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.health.set([]wire.DeviceHealth{{Name: "id-reader", Connected: true, Detail: "idcard"}, {Name: "printer", Detail: "escpos: disconnected"}})
	r := g.do(t, "GET", "/v1/health", testToken, "")
	var h HealthResponse
	if err := json.Unmarshal(r.body, &h); err != nil || h.Agent.ID != "kiosk-1" || h.Agent.OK || len(h.Devices) != 2 || !h.Devices[0].Connected {
		t.Errorf("%s: %v", r.body, err)
	}
	if r := g.do(t, "GET", "/v1/nothing", testToken, ""); r.status != 404 {
		t.Errorf("unknown path: %d", r.status)
	}
	if r := g.do(t, "GET", "/v1/transactions", testToken, ""); r.status != 405 {
		t.Errorf("wrong method: %d", r.status)
	}
}

func TestEventsWebSocket(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.health.set([]wire.DeviceHealth{{Name: "printer", Connected: true, Detail: "escpos"}})
	wsURL := "ws://" + g.srv.Addr().String() + "/v1/events"
	if _, res, err := websocket.DefaultDialer.Dial(wsURL, nil); err == nil || res == nil || res.StatusCode != 401 {
		t.Fatalf("no token: %v %v", res, err)
	}
	// A browser offers the token as a subprotocol.
	c, res, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Sec-WebSocket-Protocol": {"kioskedge.v1, bearer." + testToken}})
	if err != nil {
		var b []byte
		if res != nil {
			b, _ = io.ReadAll(res.Body)
		}
		t.Fatal(err, res, string(b))
	}
	defer c.Close()
	if res.Header.Get("Sec-WebSocket-Protocol") != "kioskedge.v1" {
		t.Errorf("subprotocol %q", res.Header.Get("Sec-WebSocket-Protocol"))
	}
	// Wait until the subscription exists: publish until one arrives.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failing read below reports it
	got := make(chan Event, 16)
	go func() {
		defer close(got)
		for {
			var e Event
			if err := c.ReadJSON(&e); err != nil {
				return
			}
			got <- e
		}
	}()
	want := Event{Type: "code.scanned", Device: "qr", Data: map[string]any{"data": "APPT-1"}}
	var e Event
	deadline := time.After(10 * time.Second)
wait:
	for {
		g.srv.Events().Publish(want)
		select {
		case e = <-got:
			break wait
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("no event")
		}
	}
	if e.Type != "code.scanned" || e.Data["data"] != "APPT-1" {
		t.Errorf("event %+v", e)
	}
	// Health changes become device.down and device.up.
	g.health.set([]wire.DeviceHealth{{Name: "printer", Connected: false, Detail: "escpos: disconnected"}})
	for e := range got {
		if e.Type == "device.down" && e.Device == "printer" {
			break
		}
	}
	if strings.Contains(g.logs.String(), "APPT-1") {
		t.Error("scanned payload logged")
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	g := start(t, nil)
	inDoc := map[string]bool{}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			inDoc[strings.ToUpper(m)+" "+p] = true
			resps, _ := op["responses"].(map[string]any)
			if resps["401"] == nil {
				t.Errorf("%s %s: no 401 documented", m, p)
			}
		}
	}
	for _, r := range g.srv.routes {
		if !inDoc[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
		delete(inDoc, r)
	}
	for r := range inDoc {
		t.Errorf("openapi.json documents %s, which is not a route", r)
	}
	r := g.do(t, "GET", "/v1/openapi.json", testToken, "")
	if r.status != 200 || !bytes.Equal(bytes.TrimSpace(r.body), bytes.TrimSpace(OpenAPI())) {
		t.Errorf("served document differs: %d", r.status)
	}
}

func TestNewRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	base := Options{Token: testToken, IDSecret: []byte("k"), Outbox: &fakeOutbox{}}
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		o := base
		o.Listen = addr
		if s, err := New(o); !errors.Is(err, ErrOptions) {
			if s != nil {
				_ = s.Close() // failing anyway
			}
			t.Errorf("%s: %v", addr, err)
		}
	}
	// Allowed explicitly, all interfaces bind.
	o := base
	o.Listen, o.AllowNonLoopback = "0.0.0.0:0", true
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	for _, bad := range []Options{{Token: "short", IDSecret: []byte("k"), Outbox: &fakeOutbox{}, Listen: "127.0.0.1:0"},
		{Token: testToken, Outbox: &fakeOutbox{}, Listen: "127.0.0.1:0"}, {Token: testToken, IDSecret: []byte("k"), Listen: "127.0.0.1:0"}} {
		if _, err := New(bad); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "localapi.token")
	tok, err := LoadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || len(tok) != 64 {
		t.Fatalf("created %v (%v), token of %d chars", st.Mode(), err, len(tok))
	}
	again, err := LoadOrCreateToken(path)
	if err != nil || again != tok {
		t.Fatalf("reload: %v, same=%v", err, again == tok)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(path); !errors.Is(err, ErrTokenFile) || !strings.Contains(err.Error(), "0644") || strings.Contains(err.Error(), tok) {
		t.Errorf("0644 token file: %v", err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(short); !errors.Is(err, ErrTokenFile) {
		t.Errorf("short token: %v", err)
	}
}

func TestShutdownClosesWebSockets(t *testing.T) {
	t.Parallel()
	ob := &fakeOutbox{}
	s, err := New(Options{Listen: "127.0.0.1:0", Token: testToken, IDSecret: []byte("k"), Outbox: ob})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr().String()+"/v1/events", http.Header{"Authorization": {"Bearer " + testToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return with a WebSocket open")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second)) // the read below fails either way
	if _, _, err := c.ReadMessage(); err == nil {
		t.Error("the WebSocket stayed open after Run returned")
	}
}
