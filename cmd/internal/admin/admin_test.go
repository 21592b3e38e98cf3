package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
	"github.com/kioskedge/kioskedge/sync/wire"
)

const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type fakeOutbox struct {
	mu   sync.Mutex
	recs []wire.Record
	err  error
}

func (f *fakeOutbox) Append(_ context.Context, r wire.Record) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	f.recs = append(f.recs, r)
	return uint64(len(f.recs)), nil
}

func start(t *testing.T, ob *fakeOutbox) string {
	t.Helper()
	at := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	s, err := New(Options{
		Listen: "127.0.0.1:0", Token: token,
		Metrics: func(w *promtext.Writer) {
			w.Family("kioskedge_outbox_depth", promtext.Gauge, "Records not yet acked.")
			w.Sample(7)
		},
		Status: func() StatusResponse {
			return StatusResponse{Health: wire.Health{Agent: "lab-kiosk-01", Outbox: wire.OutboxHealth{Depth: 7}}, LastSync: &at}
		},
		Append: ob.Append,
		Now:    func() time.Time { return at },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

func do(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	ob := &fakeOutbox{}
	base := start(t, ob)
	bearer := "Bearer " + token
	tests := []struct {
		name, method, path, auth, body string
		code                           int
		contains                       string
	}{
		{"metrics without auth", "GET", "/metrics", "", "", 200, "kioskedge_outbox_depth 7"},
		{"status without token", "GET", "/v1/status", "", "", 401, "admin.token"},
		{"status wrong token", "GET", "/v1/status", "Bearer nope", "", 401, ""},
		{"status basic auth", "GET", "/v1/status", "Basic " + token, "", 401, ""},
		{"status", "GET", "/v1/status", bearer, "", 200, `"last_sync":"2026-11-28T09:30:00Z"`},
		{"post without token", "POST", "/v1/records", "", `{"kind":"commissioning.report","body":{}}`, 401, ""},
		{"post", "POST", "/v1/records", bearer, `{"kind":"commissioning.report","body":{"passed":true}}`, 201, `{"seq":1}`},
		{"post other kind", "POST", "/v1/records", bearer, `{"kind":"access.decision","body":{}}`, 400, "commissioning."},
		{"post bare prefix", "POST", "/v1/records", bearer, `{"kind":"commissioning.","body":{}}`, 400, ""},
		{"post array body", "POST", "/v1/records", bearer, `{"kind":"commissioning.report","body":[1]}`, 400, "JSON object"},
		{"post no body", "POST", "/v1/records", bearer, `{"kind":"commissioning.report"}`, 400, "JSON object"},
		{"post unknown field", "POST", "/v1/records", bearer, `{"kind":"commissioning.report","body":{},"class":1}`, 400, ""},
		{"post too big", "POST", "/v1/records", bearer, `{"kind":"commissioning.report","body":{"x":"` + strings.Repeat("a", MaxRecordBody) + `"}}`, 400, ""},
		{"get records", "GET", "/v1/records", bearer, "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, tt.method, base+tt.path, tt.auth, tt.body)
			if code != tt.code || !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.contains)
			}
			if strings.Contains(body, token) {
				t.Error("the token leaked into a response")
			}
		})
	}
	if len(ob.recs) != 1 {
		t.Fatalf("appended %d records, want 1", len(ob.recs))
	}
	r := ob.recs[0]
	if r.Kind != "commissioning.report" || r.Class != wire.ClassCritical || string(r.Body) != `{"passed":true}` || r.Time.IsZero() {
		t.Errorf("record %+v", r)
	}
	var st StatusResponse
	_, body := do(t, "GET", base+"/v1/status", bearer, "")
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Health.Agent != "lab-kiosk-01" || st.Health.Outbox.Depth != 7 {
		t.Errorf("status %q: %v", body, err)
	}
}

func TestAppendFailureIs503(t *testing.T) {
	base := start(t, &fakeOutbox{err: errors.New("outbox: closed")})
	code, body := do(t, "POST", base+"/v1/records", "Bearer "+token, `{"kind":"commissioning.report","body":{}}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not stored") {
		t.Errorf("%d %q", code, body)
	}
}

func TestNewRefuses(t *testing.T) {
	ok := Options{Token: token, Metrics: func(*promtext.Writer) {}, Status: func() StatusResponse { return StatusResponse{} },
		Append: (&fakeOutbox{}).Append}
	tests := []struct {
		name string
		mod  func(*Options)
		want error
	}{
		{"non-loopback", func(o *Options) { o.Listen = "0.0.0.0:0" }, ErrNotLoopback},
		{"no token", func(o *Options) { o.Listen = "127.0.0.1:0"; o.Token = "" }, ErrOptions},
		{"no port", func(o *Options) { o.Listen = "127.0.0.1" }, ErrOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.mod(&o)
			s, err := New(o)
			if !errors.Is(err, tt.want) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	o := ok
	o.Listen, o.AllowNonLoopback = "0.0.0.0:0", true
	s, err := New(o)
	if err != nil {
		t.Fatalf("allow_non_loopback: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestWriteAddrFile(t *testing.T) {
	dir := t.TempDir()
	if err := WriteAddrFile(dir, "127.0.0.1:4242"); err != nil {
		t.Fatal(err)
	}
	b, err := readFile(AddrPath(dir))
	if err != nil || b != "127.0.0.1:4242\n" {
		t.Errorf("%q %v", b, err)
	}
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
