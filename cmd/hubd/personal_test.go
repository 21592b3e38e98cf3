package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
)

// A raw ID number sealed into a record by an agent crosses a real broker
// into hubd and is found in exactly one place: the API response that asked
// reveal=1 of a hubd started with -reveal-personal-data. Not in any other
// response, not in hubd's log (at debug level).
func TestPersonalDataEndToEnd(t *testing.T) {
	const rawID, maskedID, root = "46010219900101123X", "4601**********123X", "kioskedge/e2e"
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	dir := t.TempDir()
	if err := run([]string{"keygen", "-out", dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	pub, err := sealed.LoadPublicKey(filepath.Join(dir, "hub.pub"))
	if err != nil {
		t.Fatal(err)
	}

	addr, logs, stopHub := startServe(t, []string{"-broker", b.URL(), "-plaintext", "-root", root, "-db", filepath.Join(dir, "hub.db"),
		"-http", "127.0.0.1:0", "-seal-key", filepath.Join(dir, "hub.key"), "-reveal-personal-data", "-log-level", "debug"})
	publish := startPublisher(t, b.URL(), "k1")
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	topics := wire.Topics{Root: root, Agent: "k1"}
	publish(uplink.Message{Topic: topics.Status(), QoS: 1, Retained: true, Payload: []byte(`{"state":"online","agent":"k1","boot_id":"b1","bdseq":1}`)})
	eventually(t, "hubd knows k1", func() bool { c, _ := get("/api/agents/k1/received"); return c == 200 })

	sealedID, err := sealed.Seal(pub, []byte(rawID))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := wire.MarshalRecord(wire.Record{Kind: "kiosk.transaction", Class: wire.ClassCritical, Time: time.Now(),
		Body: fmt.Appendf(nil, `{"service":"renew","credential":{"kind":"idcard","number_sealed":%q}}`, sealedID)})
	if err != nil {
		t.Fatal(err)
	}
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	msg, _, err := codec.EncodeBatch("k1", "b1", 1, 1, []wire.Entry{{Seq: 1, Raw: raw}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(uplink.Message{Topic: topics.Events(), QoS: 1, Payload: msg})
	eventually(t, "record stored", func() bool { _, b := get("/api/agents/k1/records"); return strings.Contains(b, `"seq":1`) })

	masked := 0
	for _, path := range []string{"/api/agents", "/api/stats", "/api/agents/k1/received", "/api/agents/k1/records",
		"/api/agents/k1/records?after=0&limit=1", "/api/agents/k1/records?reveal=0", "/api/agents/k1/records?reveal=x"} {
		code, body := get(path)
		if strings.Contains(body, rawID) {
			t.Errorf("GET %s (%d) shows the raw ID number", path, code)
		}
		masked += strings.Count(body, maskedID)
	}
	if masked != 3 {
		t.Errorf("masked ID number in %d responses, want 3", masked)
	}
	if code, body := get("/api/agents/k1/records?reveal=1"); code != 200 || strings.Count(body, rawID) != 1 {
		t.Errorf("revealed response %d: %s", code, body)
	}
	stopHub()
	out := logs.String()
	if strings.Contains(out, rawID) || strings.Contains(out, sealedID) {
		t.Errorf("hubd's log holds the ID number or its sealed form:\n%s", out)
	}
	if !strings.Contains(out, "personal data revealed") {
		t.Errorf("the reveal is not in the log:\n%s", out)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startServe runs hubd serve with args in-process and waits until its HTTP
// API listens; it returns that address, serve's log and an idempotent stop
// (also run when the test ends) that reports serve's error.
func startServe(t *testing.T, args []string) (addr string, logs *logbuf.Buffer, stop func()) {
	t.Helper()
	logs = new(logbuf.Buffer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, args, logs) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	eventually(t, "hubd listening", func() bool {
		for line := range strings.SplitSeq(logs.String(), "\n") {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "hub http api listening" {
				addr = l.Addr
			}
		}
		return addr != ""
	})
	return addr, logs, stop
}

// startPublisher runs an uplink session to url as clientID until the test
// ends and returns a publish that retries (up to 10 s) while the session
// is not yet connected.
func startPublisher(t *testing.T, url, clientID string) (publish func(uplink.Message)) {
	t.Helper()
	s, err := uplink.NewSession(uplink.SessionOptions{Broker: url, ClientID: clientID, AllowPlaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return func(m uplink.Message) {
		t.Helper()
		pctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		for {
			err := s.Publish(pctx, m)
			if err == nil {
				return
			}
			if !errors.Is(err, uplink.ErrNotConnected) || pctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
