package hub

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
)

const (
	rawID    = "46010219900101123X"
	maskedID = "4601**********123X"
	rawName  = "张三丰"
)

// maskField is what cmd/hubd passes as Options.Mask.
func maskField(field, v string) string {
	if strings.HasSuffix(field, "name_sealed") {
		return credential.MaskName(v)
	}
	return credential.Mask(v)
}

// recordsFixture starts a hub whose agent "k1" stored n transaction
// records, each with an ID number and a name sealed to pub (nested and at
// the top), plus one record with a value sealed to another key and one
// whose body is not JSON.
func recordsFixture(t *testing.T, n int, pub *sealed.PublicKey, mod func(*Options)) (*fixture, *httptest.Server) {
	t.Helper()
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), mod)
	_, otherPub, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	seal := func(p *sealed.PublicKey, v string) string {
		s, err := sealed.Seal(p, []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var es []wire.Entry
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf(`{"service":"renew-<id>","n":%d,"credential":{"kind":"idcard","hash":"ab12","number_sealed":%q},"name_sealed":%q,"note_sealed":"v1.not-sealed-at-all"}`,
			i, seal(pub, rawID), seal(pub, rawName))
		es = append(es, wire.Entry{Seq: uint64(i), Raw: rec(t, "kiosk.transaction", body)})
	}
	es = append(es,
		wire.Entry{Seq: uint64(n + 1), Raw: rec(t, "kiosk.transaction", fmt.Sprintf(`{"number_sealed":%q}`, seal(otherPub, rawID)))},
		wire.Entry{Seq: uint64(n + 2), Raw: rec(t, "kiosk.transaction", `not json`)},
	)
	msg, _, err := codec.EncodeBatch("k1", "boot-1", 1, uint64(n+2), es, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.events("k1", msg)
	f.waitHub(func() bool { return f.hub.Stats().Records == uint64(n+2) })
	srv := httptest.NewServer(f.hub.Handler())
	t.Cleanup(srv.Close)
	return f, srv
}

func getBody(t *testing.T, url string, wantCode int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, wantCode)
	}
	return string(b)
}

func getPage(t *testing.T, url string) RecordsPage {
	t.Helper()
	var p RecordsPage
	if err := json.Unmarshal([]byte(getBody(t, url, 200)), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

type txBody struct {
	Credential struct {
		NumberSealed string `json:"number_sealed"`
	} `json:"credential"`
	NameSealed string `json:"name_sealed"`
	NoteSealed string `json:"note_sealed"`
	Service    string `json:"service"`
	N          int    `json:"n"`
}

func body(t *testing.T, v RecordView) txBody {
	t.Helper()
	var b txBody
	if err := json.Unmarshal(v.Body, &b); err != nil {
		t.Fatalf("seq %d body %s: %v", v.Seq, v.Body, err)
	}
	return b
}

func TestRecordsMaskedByDefault(t *testing.T) {
	priv, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	_, srv := recordsFixture(t, 3, pub, func(o *Options) { o.SealKey = priv; o.Mask = maskField; o.RevealPersonalData = true })
	p := getPage(t, srv.URL+"/api/agents/k1/records")
	if len(p.Records) != 5 || p.More || p.NextAfter != 5 || p.Revealed || p.Agent != "k1" {
		t.Fatalf("page %+v", p)
	}
	r := p.Records[0]
	if r.Seq != 1 || r.Kind != "kiosk.transaction" || r.Class != "critical" || !r.Time.Equal(t0) || r.Error != "" {
		t.Fatalf("record %+v", r)
	}
	b := body(t, r)
	if b.Credential.NumberSealed != maskedID || b.NameSealed != "张**" || b.Service != "renew-<id>" || b.N != 1 {
		t.Fatalf("body %s", r.Body)
	}
	if b.NoteSealed != "v1.not-sealed-at-all" {
		t.Errorf("a malformed sealed value was changed: %q", b.NoteSealed)
	}
	want := map[string]string{"credential.number_sealed": SealedMasked, "name_sealed": SealedMasked, "note_sealed": SealedUnopenable}
	if fmt.Sprint(r.Sealed) != fmt.Sprint(want) {
		t.Errorf("sealed %v, want %v", r.Sealed, want)
	}
	if other := p.Records[3]; other.Sealed["number_sealed"] != SealedUnopenable || !strings.Contains(string(other.Body), `"v1.`) {
		t.Errorf("sealed to another key: %+v", other)
	}
	if bad := p.Records[4]; bad.Error == "" || string(bad.Body) != "null" || bad.Seq != 5 {
		t.Errorf("non-JSON body: %+v", bad)
	}
	// reveal=0 is the default spelled out.
	if q := getPage(t, srv.URL+"/api/agents/k1/records?reveal=0"); body(t, q.Records[0]).Credential.NumberSealed != maskedID {
		t.Error("reveal=0 revealed")
	}
}

func TestRecordsMaskWithoutMaskFunc(t *testing.T) {
	priv, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	_, srv := recordsFixture(t, 1, pub, func(o *Options) { o.SealKey = priv })
	b := body(t, getPage(t, srv.URL+"/api/agents/k1/records").Records[0])
	if b.Credential.NumberSealed != "********" || b.NameSealed != "********" {
		t.Errorf("body %+v", b)
	}
}

func TestRecordsRevealNeedsFlagAndQuery(t *testing.T) {
	priv, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	// Without the flag a reveal request is refused, not quietly masked.
	_, srv := recordsFixture(t, 1, pub, func(o *Options) { o.SealKey = priv; o.Mask = maskField })
	if b := getBody(t, srv.URL+"/api/agents/k1/records?reveal=1", 403); strings.Contains(b, rawID) {
		t.Fatal("403 body holds the number")
	}
	// With the flag, only reveal=1 reveals.
	_, srv = recordsFixture(t, 1, pub, func(o *Options) { o.SealKey = priv; o.Mask = maskField; o.RevealPersonalData = true })
	p := getPage(t, srv.URL+"/api/agents/k1/records?reveal=1")
	b := body(t, p.Records[0])
	if !p.Revealed || b.Credential.NumberSealed != rawID || b.NameSealed != rawName {
		t.Fatalf("revealed page %+v", p)
	}
	if p.Records[0].Sealed["credential.number_sealed"] != SealedRevealed {
		t.Errorf("sealed %v", p.Records[0].Sealed)
	}
	getBody(t, srv.URL+"/api/agents/k1/records?reveal=yes", 400)
}

func TestRecordsStaySealedWithoutKey(t *testing.T) {
	_, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	_, srv := recordsFixture(t, 1, pub, func(o *Options) { o.RevealPersonalData = true })
	for _, q := range []string{"", "?reveal=1"} {
		p := getPage(t, srv.URL+"/api/agents/k1/records"+q)
		b := body(t, p.Records[0])
		if !sealed.IsSealed(b.Credential.NumberSealed) || len(b.Credential.NumberSealed) != 91 || p.Revealed {
			t.Errorf("%q: number %q", q, b.Credential.NumberSealed)
		}
		if p.Records[0].Sealed["credential.number_sealed"] != SealedKept {
			t.Errorf("%q: sealed %v", q, p.Records[0].Sealed)
		}
	}
}

func TestRecordsPaging(t *testing.T) {
	priv, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	_, srv := recordsFixture(t, 8, pub, func(o *Options) { o.SealKey = priv; o.Mask = maskField })
	var seqs []uint64
	after, pages := uint64(0), 0
	for {
		p := getPage(t, fmt.Sprintf("%s/api/agents/k1/records?after=%d&limit=3", srv.URL, after))
		pages++
		if len(p.Records) > 3 {
			t.Fatalf("page of %d", len(p.Records))
		}
		for _, r := range p.Records {
			seqs = append(seqs, r.Seq)
		}
		after = p.NextAfter
		if !p.More {
			break
		}
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5 6 7 8 9 10]" || pages != 4 {
		t.Fatalf("seqs %v in %d pages", seqs, pages)
	}
	if p := getPage(t, srv.URL+"/api/agents/k1/records?after=10"); len(p.Records) != 0 || p.More || p.NextAfter != 10 {
		t.Errorf("past the end: %+v", p)
	}
	if p := getPage(t, srv.URL+"/api/agents/k1/records?after=18446744073709551615"); len(p.Records) != 0 || p.More {
		t.Errorf("after max: %+v", p)
	}
	if b := getBody(t, srv.URL+"/api/agents/k1/records?after=10", 200); !strings.Contains(b, `"records":[]`) {
		t.Errorf("empty page %s", b)
	}
	if p := getPage(t, srv.URL+"/api/agents/k1/records?after=4&limit=1"); len(p.Records) != 1 || p.Records[0].Seq != 5 || !p.More {
		t.Errorf("limit 1: %+v", p)
	}
	for _, q := range []string{"after=-1", "after=x", "limit=0", "limit=1001", "limit=x"} {
		getBody(t, srv.URL+"/api/agents/k1/records?"+q, 400)
	}
	getBody(t, srv.URL+"/api/agents/nobody/records", 404)
}

// A raw ID number sealed into a record appears in no API response and no
// log line, except the one response that asked for it with reveal=1 on a
// hub allowed to reveal. The masked form is what the other responses show.
func TestPersonalDataOnlyInRevealedResponse(t *testing.T) {
	priv, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f, srv := recordsFixture(t, 2, pub, func(o *Options) {
		o.SealKey = priv
		o.Mask = maskField
		o.RevealPersonalData = true
		o.Logger = log
	})
	f.tr.Deliver(t, root+"/v1/k1/status", []byte(`{"state":"online","agent":"k1","bdseq":1}`))
	f.tr.Deliver(t, root+"/v1/k1/health", []byte(`{"agent":"k1","uptime_s":5}`))
	f.waitHub(func() bool { return f.hub.Stats().Health == 1 })

	leaks := func(s string) bool { return strings.Contains(s, rawID) || strings.Contains(s, rawName) }
	var masked int
	for _, path := range []string{
		"/api/agents", "/api/stats", "/api/agents/k1/received",
		"/api/agents/k1/records", "/api/agents/k1/records?limit=1", "/api/agents/k1/records?after=1&reveal=0",
		"/api/agents/k1/records?reveal=bogus", "/api/agents/nobody/records?reveal=1",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if leaks(string(b)) {
			t.Errorf("GET %s shows personal data", path)
		}
		masked += strings.Count(string(b), maskedID)
	}
	if masked != 4 {
		t.Errorf("%d masked ID numbers in the responses, want 4", masked)
	}
	revealed := getBody(t, srv.URL+"/api/agents/k1/records?reveal=1", 200)
	if strings.Count(revealed, rawID) != 2 || strings.Count(revealed, rawName) != 2 {
		t.Errorf("revealed response: %s", revealed)
	}
	f.stop()
	out := logs.String()
	if leaks(out) {
		t.Errorf("a log line holds personal data:\n%s", out)
	}
	if !strings.Contains(out, "personal data revealed") || !strings.Contains(out, `"fields":4`) {
		t.Errorf("the reveal was not logged:\n%s", out)
	}
}
