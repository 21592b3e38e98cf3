package main

// The crash tests of issue 5: kioskd (this test binary re-executed) takes
// transactions through its local API while the hub is down, is SIGKILLed
// (right after the last 201, or while requests are in flight), and is
// started again; every transaction that got a 201 must reach the hub, with
// the id and seq the 201 gave, and retrying every request with its
// Idempotency-Key after the restart must leave exactly one record per key.

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
	"sync/atomic"
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

// txResult is one POST /v1/transactions: err is set when no response came
// (the agent died or was down), and then the outcome is unknown.
type txResult struct {
	status   int
	c        created
	replayed bool
	body     []byte
	err      error
}

var txClient = &http.Client{Timeout: waitFor}

// txBody is transaction i's request body: the same for every attempt.
func txBody(i int) string {
	return fmt.Sprintf(`{"type":"certificate","service_code":"SS-%03d","outcome":"completed","started_at":"2026-05-01T09:30:00+08:00","ended_at":"2026-05-01T09:31:00+08:00","details":{"i":%d}}`, i, i)
}

// postTx posts transaction i with Idempotency-Key "tx-<i>".
func postTx(addr, token string, i int) txResult {
	req, err := http.NewRequest("POST", "http://"+addr+"/v1/transactions", strings.NewReader(txBody(i)))
	if err != nil {
		return txResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", fmt.Sprintf("tx-%d", i))
	res, err := txClient.Do(req)
	if err != nil {
		return txResult{err: err}
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return txResult{err: err}
	}
	r := txResult{status: res.StatusCode, body: b, replayed: res.Header.Get("Idempotent-Replayed") == "true"}
	if r.status == 201 {
		if err := json.Unmarshal(b, &r.c); err != nil {
			r.err = err
		}
	}
	return r
}

// readToken reads the local API token kioskd created next to cfg.
func readToken(t *testing.T, cfg string) string {
	t.Helper()
	tokenFile := filepath.Join(filepath.Dir(cfg), "data", "localapi.token")
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// retryAll posts every transaction 0..n-1 again, once the agent restarted,
// and checks each answer: 201, and for those whose first attempt got a 201
// the same seq and id, replayed. It returns the answers and how many were
// replays.
func retryAll(t *testing.T, addr, token string, n int, first map[int]created) ([]created, int) {
	t.Helper()
	out := make([]created, n)
	var replays atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				r := postTx(addr, token, i)
				if r.err != nil || r.status != 201 {
					t.Errorf("retry of transaction %d: %d %s %v", i, r.status, r.body, r.err)
					continue
				}
				if f, ok := first[i]; ok && (r.c != f || !r.replayed) {
					t.Errorf("retry of transaction %d: %+v replayed %v, want %+v replayed", i, r.c, r.replayed, f)
				}
				out[i] = r.c
				if r.replayed {
					replays.Add(1)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out, int(replays.Load())
}

// checkOncePerKey waits until the hub holds everything through the highest
// seq in answers, then checks it holds exactly one transaction per answer,
// under the answer's seq and id.
func checkOncePerKey(t *testing.T, h *hubtest.Hub, agent string, answers []created) {
	t.Helper()
	var last uint64
	for _, c := range answers {
		last = max(last, c.Seq)
	}
	h.WaitHolds(t, agent, last, waitFor)
	seqs := map[string][]uint64{}
	for _, r := range h.Records(t, agent) {
		if r.Kind != "kiosk.transaction" {
			continue
		}
		var body struct{ ID string }
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		seqs[body.ID] = append(seqs[body.ID], r.Seq)
	}
	for i, c := range answers {
		if s := seqs[c.ID]; len(s) != 1 || s[0] != c.Seq {
			t.Errorf("transaction %d (%s, seq %d) is at the hub under seqs %v, want exactly [%d]", i, c.ID, c.Seq, s, c.Seq)
		}
	}
	if len(seqs) != len(answers) {
		t.Errorf("the hub holds %d transaction ids, want %d", len(seqs), len(answers))
	}
}

// offlineKiosk is kioskd as a kiosk whose hub is down: nothing leaves the
// box before a kill, so only the outbox can carry what was answered.
type offlineKiosk struct {
	h                    *hubtest.Hub
	id, cfg, addr, token string
	d                    *daemon
}

func startOfflineKiosk(t *testing.T, id string) *offlineKiosk {
	t.Helper()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	h := hubtest.Start(t, b.URL(), hubtest.Options{Root: labRoot})
	h.Stop()
	cfg := writeConfig(t, labConfig(id, b.URL()))
	d := startDaemon(t, cfg)
	return &offlineKiosk{h: h, id: id, cfg: cfg, d: d, addr: apiAddr(t, d), token: readToken(t, cfg)}
}

// kill SIGKILLs kioskd and fails the test unless it died of it.
func (k *offlineKiosk) kill(t *testing.T) {
	t.Helper()
	k.d.signal(t, syscall.SIGKILL)
	if ws := k.d.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("kioskd ended with %v, want SIGKILL", ws)
	}
}

// restart brings the hub back, then starts kioskd again. (In the other
// order the first batches can reach the broker before the restarted hub
// has subscribed; the agent then resends after its ack timeout, 15 s, which
// the hub-restart tests in cmd/internal/node cover. Here the point is the
// SIGKILL, not that wait.)
func (k *offlineKiosk) restart(t *testing.T) (d *daemon, addr string) {
	t.Helper()
	k.h.Restart()
	d = startDaemon(t, k.cfg)
	return d, apiAddr(t, d)
}

func TestDaemonSIGKILLAfter201KeepsEveryTransaction(t *testing.T) {
	t.Parallel()
	k := startOfflineKiosk(t, "lab-kiosk-11")
	addr, token := k.addr, k.token

	const n, workers = 60, 8
	var mu sync.Mutex
	got := map[int]created{}
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				r := postTx(addr, token, i)
				if r.err != nil || r.status != 201 || r.replayed {
					t.Errorf("transaction %d: %d %s replayed %v %v", i, r.status, r.body, r.replayed, r.err)
					return
				}
				mu.Lock()
				got[i] = r.c
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	k.kill(t) // right after the last 201
	if t.Failed() {
		return
	}

	// Bring the hub back, then the agent: every 201 arrives.
	d2, addr2 := k.restart(t)
	answers := make([]created, n)
	for i, c := range got {
		answers[i] = c
	}
	checkOncePerKey(t, k.h, k.id, answers)
	// Every client retries after the restart: each gets its first answer
	// back from the outbox's idempotency index, and nothing more is stored.
	if _, replays := retryAll(t, addr2, token, n, got); replays != n {
		t.Errorf("%d of %d retries were replays", replays, n)
	}
	checkOncePerKey(t, k.h, k.id, answers)
	d2.signal(t, syscall.SIGTERM)
	d2.wait(t)
}

// TestDaemonSIGKILLMidRequestsRetriesStoreOnce SIGKILLs kioskd while
// requests are in flight, so some clients never learn whether their
// transaction was stored; after the restart every client retries with its
// Idempotency-Key, and the hub must end with exactly one record per key:
// the answer a client got before the kill comes back unchanged, and a
// transaction committed just before the kill is not stored again.
func TestDaemonSIGKILLMidRequestsRetriesStoreOnce(t *testing.T) {
	t.Parallel()
	k := startOfflineKiosk(t, "lab-kiosk-12")
	addr, token := k.addr, k.token

	const n, killAfter = 150, 40
	var mu sync.Mutex
	first := map[int]created{}
	unknown := 0
	reached := make(chan struct{})
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				r := postTx(addr, token, i)
				mu.Lock()
				switch {
				case r.err != nil:
					unknown++ // the agent died with this request, or before it
				case r.status != 201 || r.replayed:
					t.Errorf("transaction %d: %d %s replayed %v", i, r.status, r.body, r.replayed)
				default:
					first[i] = r.c
					if len(first) == killAfter {
						close(reached)
					}
				}
				mu.Unlock()
			}
		})
	}
	go func() {
		defer close(jobs)
		for i := range n {
			jobs <- i
		}
	}()
	select {
	case <-reached:
	case <-time.After(waitFor):
		t.Fatal("no 201s before the kill")
	}
	k.kill(t) // workers are mid-request
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d of %d transactions got a 201 before the kill; %d attempts failed with it", len(first), n, unknown)

	d2, addr2 := k.restart(t)
	answers, replays := retryAll(t, addr2, token, n, first)
	if t.Failed() {
		return
	}
	// Replays beyond the 201s seen: transactions committed by the killed
	// agent whose client never got the answer.
	t.Logf("after the restart %d retries were replays (%d had a 201 before the kill)", replays, len(first))
	checkOncePerKey(t, k.h, k.id, answers)
	d2.signal(t, syscall.SIGTERM)
	d2.wait(t)
}
