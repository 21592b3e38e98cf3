package main

// The crash test of issue 5: kioskd (this test binary re-executed) takes
// transactions through its local API while the hub is down, is SIGKILLed
// right after the last 201, and is started again; every transaction that
// got a 201 must reach the hub, with the id and seq the 201 gave.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

var apiAddrRE = regexp.MustCompile(`"msg":"local API listening".*?"addr":"([^"]+)"`)

// apiAddr waits for kioskd's "local API listening" line and returns the address.
func apiAddr(t *testing.T, d *daemon) string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		if m := apiAddrRE.FindStringSubmatch(d.stderr.String()); m != nil {
			return m[1]
		}
		if isClosed(d.exited) || time.Now().After(deadline) {
			t.Fatalf("kioskd never logged its local API address (exited: %v)", isClosed(d.exited))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type created struct {
	Seq uint64
	ID  string
}

func TestDaemonSIGKILLAfter201KeepsEveryTransaction(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	h := hubtest.Start(t, b.URL(), hubtest.Options{Root: labRoot})
	h.Stop() // nothing leaves the box before the kill: the outbox alone must carry the 201s
	const id = "lab-kiosk-11"
	cfg := writeConfig(t, labConfig(id, b.URL()))
	d := startDaemon(t, cfg)
	addr := apiAddr(t, d)
	tokenFile := filepath.Join(filepath.Dir(cfg), "data", "localapi.token")
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))

	const n, workers = 60, 8
	var mu sync.Mutex
	var got []created
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				body := fmt.Sprintf(`{"type":"certificate","service_code":"SS-%03d","outcome":"completed","started_at":"2026-05-01T09:30:00+08:00","ended_at":"2026-05-01T09:31:00+08:00","details":{"i":%d}}`, i, i)
				req, err := http.NewRequest("POST", "http://"+addr+"/v1/transactions", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Idempotency-Key", fmt.Sprintf("tx-%d", i))
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("transaction %d: %v", i, err)
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != 201 {
					t.Errorf("transaction %d: %d %s %v", i, res.StatusCode, b, err)
					return
				}
				var c created
				if err := json.Unmarshal(b, &c); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, c)
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	d.signal(t, syscall.SIGKILL) // right after the last 201
	if ws := d.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("kioskd ended with %v, want SIGKILL", ws)
	}
	if t.Failed() {
		return
	}

	// Bring the hub back, then start the agent again: every 201 arrives.
	// (In the other order the first batches can reach the broker before the
	// restarted hub has subscribed; the agent then resends after its ack
	// timeout, 15 s, which the hub-restart tests in cmd/internal/node cover.
	// Here the point is the SIGKILL, not that wait.)
	h.Restart()
	d2 := startDaemon(t, cfg)
	apiAddr(t, d2)
	var last uint64
	for _, c := range got {
		last = max(last, c.Seq)
	}
	h.WaitHolds(t, id, last, waitFor)
	byID := map[string]uint64{}
	for _, r := range h.Records(t, id) {
		if r.Kind != "kiosk.transaction" {
			continue
		}
		var body struct{ ID string }
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		byID[body.ID] = r.Seq
	}
	for _, c := range got {
		if seq, ok := byID[c.ID]; !ok || seq != c.Seq {
			t.Errorf("transaction %s (seq %d from its 201) at the hub: seq %d, present %v", c.ID, c.Seq, seq, ok)
		}
	}
	if len(byID) != n {
		t.Errorf("the hub holds %d transactions, want %d", len(byID), n)
	}
	d2.signal(t, syscall.SIGTERM)
	d2.wait(t)
}
