package kiosk

// The local API wired to real drivers over ptys: an ID card from
// idcardsim, receipts on escpossim, device events over a WebSocket, a
// transaction with a credential that is stored hashed, and a scan of the
// logs for the card's personal data.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/localapi"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/escpossim"
	"github.com/kioskedge/kioskedge/testhw/idcardsim"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
	"github.com/kioskedge/kioskedge/testhw/pty"
)

const waitFor = 15 * time.Second

type rig struct {
	k     *Kiosk
	url   string
	token string
	logs  *logbuf.Buffer
}

func (g *rig) call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

func errCode(b []byte) string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(b, &e) // "" for a non-error body
	return e.Error.Code
}

func TestKioskDevicesThroughTheAPI(t *testing.T) {
	dir := t.TempDir()
	idPair, err := pty.New(filepath.Join(dir, "idcard0"))
	if err != nil {
		t.Fatal(err)
	}
	prPair, err := pty.New(filepath.Join(dir, "printer0"))
	if err != nil {
		t.Fatal(err)
	}
	idSim, prSim := idcardsim.New(), escpossim.New()
	person := idcardsim.Fake()
	simCtx, stopSims := context.WithCancel(context.Background())
	var sims sync.WaitGroup
	idDev, prDev := idPair.Device(), prPair.Device()
	sims.Go(func() { _ = idSim.Serve(idDev) })         // ends with the device's close error, expected
	sims.Go(func() { _ = prSim.Serve(simCtx, prDev) }) // ends with ctx or the close error, expected
	defer func() {
		stopSims()
		idPair.Close()
		prPair.Close()
		sims.Wait()
	}()

	siteKey := bytes.Repeat([]byte{7}, privacy.SiteKeyLen)
	if err := privacy.WriteSiteKey(filepath.Join(dir, "site.key"), siteKey); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[agent]
id = "kiosk-test-1"
data_dir = "data"
[hub]
broker = "tcp://127.0.0.1:1"
root = "kioskedge/lab"
plaintext = true
[localapi]
listen = "127.0.0.1:0"
[privacy]
site_key_file = "site.key"
[[device]]
name = "id-1"
kind = "idcard"
path = %q
[device.idcard]
poll_interval = "50ms"
[[device]]
name = "printer-1"
kind = "escpos"
path = %q
baud = 115200
[device.escpos]
poll_interval = "100ms"
`, idPair.Path(), prPair.Path())), dir)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	k, err := Open(node.Options{Config: cfg, Codec: codec, Logger: log, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(cfg.LocalAPI.TokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	token, err := localapi.LoadOrCreateToken(cfg.LocalAPI.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	g := &rig{k: k, url: "http://" + k.API.Addr().String(), token: token, logs: logs}

	// Both devices connected.
	deadline := time.Now().Add(waitFor)
	for {
		code, b := g.call(t, "GET", "/v1/health", "")
		var h localapi.HealthResponse
		if err := json.Unmarshal(b, &h); code == 200 && err == nil && h.Agent.OK && len(h.Devices) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("devices never healthy: %d %s", code, b)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Events: the card is inserted after the client subscribed.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+k.API.Addr().String()+"/v1/events",
		http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for k.API.Events().Subscribers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the WebSocket client was never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	idSim.Insert(person)
	_ = ws.SetReadDeadline(time.Now().Add(waitFor)) // a failing read is reported below
	for {
		var e localapi.Event
		if err := ws.ReadJSON(&e); err != nil {
			t.Fatalf("no card.inserted event: %v", err)
		}
		if e.Type == "card.inserted" && e.Device == "id-1" {
			break
		}
	}

	// Read it through the API.
	code, b := g.call(t, "POST", "/v1/cards/read", `{"reader":"id-1","timeout_ms":3000}`)
	var cr localapi.CardReadResponse
	if err := json.Unmarshal(b, &cr); code != 200 || err != nil || cr.Fields["number"] != person.Number || cr.Fields["name"] != person.Name {
		t.Fatalf("cards/read: %d %s", code, b)
	}
	// No card: 404 after the timeout.
	idSim.Remove()
	if code, b := g.call(t, "POST", "/v1/cards/read", `{"reader":"id-1","timeout_ms":300}`); code != 404 || errCode(b) != "no_card" {
		t.Errorf("no card: %d %s", code, b)
	}
	if code, b := g.call(t, "POST", "/v1/cards/read", `{"reader":"printer-1"}`); code != 400 || errCode(b) != "unknown_reader" {
		t.Errorf("a printer as a reader: %d %s", code, b)
	}

	// Print a receipt; then paper out and cover open.
	code, b = g.call(t, "POST", "/v1/print", `{"title":"Receipt 42","lines":[{"text":"Service SS-017","bold":true},{"text":"Thank you","align":"center"}],"qr":"https://example.gov/r/42","cut":true}`)
	if code != 200 || !strings.Contains(string(b), `"paper_out":false`) {
		t.Fatalf("print: %d %s", code, b)
	}
	if paper := prSim.Paper(); !strings.Contains(paper, "Receipt 42") || !strings.Contains(paper, "Thank you") {
		t.Errorf("paper:\n%s", paper)
	}
	prSim.SetPaperOut(true)
	if code, b := g.call(t, "POST", "/v1/print", `{"title":"x"}`); code != 409 || errCode(b) != "paper_out" || !strings.Contains(string(b), `"paper_out":true`) {
		t.Errorf("paper out: %d %s", code, b)
	}
	prSim.SetPaperOut(false)
	prSim.SetCoverOpen(true)
	if code, b := g.call(t, "POST", "/v1/print", `{"title":"x"}`); code != 409 || errCode(b) != "cover_open" {
		t.Errorf("cover open: %d %s", code, b)
	}
	prSim.SetCoverOpen(false)

	// A transaction with the card's number: stored with the keyed hash only.
	code, b = g.call(t, "POST", "/v1/transactions", fmt.Sprintf(`{"type":"certificate","service_code":"SS-017","outcome":"completed",
"started_at":"2026-05-01T09:30:00+08:00","ended_at":"2026-05-01T09:31:00+08:00","credential":{"kind":"idcard","number":%q}}`, person.Number))
	var tr localapi.TransactionResponse
	if err := json.Unmarshal(b, &tr); code != 201 || err != nil {
		t.Fatalf("transaction: %d %s", code, b)
	}
	es, err := k.Node.Outbox.Read(tr.Seq-1, 1, 0)
	if err != nil || len(es) != 1 {
		t.Fatalf("outbox read: %v %d", err, len(es))
	}
	rec, err := wire.UnmarshalRecord(es[0].Seq, "kiosk-test-1", es[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	wantHash := privacy.KeyedHash(siteKey, credential.Credential{Kind: credential.IDCard, Number: person.Number})
	if rec.Kind != localapi.KindTransaction || !bytes.Contains(rec.Body, []byte(wantHash)) || bytes.Contains(rec.Body, []byte(person.Number)) {
		t.Errorf("record %s: %s", rec.Kind, rec.Body)
	}

	// Nothing personal in the logs.
	for _, secret := range []string{person.Number, person.Name, person.Address, "测试"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs contain %q", secret)
		}
	}
}
