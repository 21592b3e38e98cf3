package gate_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/cmd/internal/gate"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSwipeOpensDoorAndReachesHub: a known card releases the door, an
// unknown one does not, and both decisions reach the hub, keyed by hash.
func TestSwipeOpensDoorAndReachesHub(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	hub := hubtest.Start(t, b.URL(), hubtest.Options{})
	r := newAgent(t, b.URL(), "gate-1", `unlock_pulse = "300ms"`, oneDoor, nil)
	r.start(t)
	north := []uint32{allowlist.GroupID("north")}
	loadSnapshot(t, r.gate.Allowlist, 1, []allowlist.Entry{{Key: card{12, 3456}.hash(t, r.key), DoorGroups: north}})
	door := r.hw.Door("main")
	waitUntil(t, "the door secured at start", door.Locked)
	// The reader reports connected once both lines are configured for
	// edges; from then on the simulated lines queue every edge.
	waitUntil(t, "the reader watching its lines", func() bool {
		for _, d := range r.node.Monitor.Health() {
			if d.Name == "main-in" {
				return d.Connected
			}
		}
		return false
	})

	// Each frame's edges are set at once, stamped with their times on the
	// wire, not paced by sleeps: a loaded machine could stretch a sleep
	// past the reader's frame gap and split the frame (as kioskdemo does).
	if _, err := r.hw.Swipe("main-in", gpiosim.H10301(12, 3456), gpiosim.TxOptions{NoPace: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the door released for a known card", func() bool { return !door.Locked() })
	waitUntil(t, "the door secured after the pulse", door.Locked)

	if _, err := r.hw.Swipe("main-in", gpiosim.H10301(12, 9999), gpiosim.TxOptions{NoPace: true}); err != nil {
		t.Fatal(err)
	}
	var got []string
	waitUntil(t, "two decisions at the hub", func() bool {
		got = got[:0]
		for _, rec := range hub.Records(t, "gate-1") {
			if rec.Kind != "access.decision" {
				continue
			}
			var d struct{ Result, Reason, Cred string }
			if err := json.Unmarshal(rec.Body, &d); err != nil {
				t.Fatal(err)
			}
			if len(d.Cred) != 32 {
				t.Fatalf("decision without a 32-hex credential hash: %s", rec.Body)
			}
			got = append(got, d.Result+"/"+d.Reason)
		}
		return len(got) >= 2
	})
	if got[0] != "granted/allowlist" || got[1] != "denied/unknown" {
		t.Fatalf("decisions at the hub = %v, want granted/allowlist then denied/unknown", got)
	}
}

func sortedEntries(es []allowlist.Entry) []allowlist.Entry {
	slices.SortFunc(es, func(a, b allowlist.Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return es
}

func sum(chunks [][]byte) [32]byte {
	h := sha256.New()
	for _, c := range chunks {
		h.Write(c)
	}
	return [32]byte(h.Sum(nil))
}

// TestCorruptAllowlistStartsEmptyAndAlarms: an unreadable allowlist file
// does not stop the gate: it is moved aside, the gate starts with an empty
// list (denying) and the hub gets an allowlist.reset record.
func TestCorruptAllowlistStartsEmptyAndAlarms(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	hub := hubtest.Start(t, b.URL(), hubtest.Options{})
	r := newAgent(t, b.URL(), "gate-1", `unlock_pulse = "300ms"`, oneDoor, nil)
	if err := os.MkdirAll(filepath.Dir(r.cfg.Gate.AllowlistFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.cfg.Gate.AllowlistFile, bytes.Repeat([]byte("not a bbolt file "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	if v := r.gate.Allowlist.Version(); v != 0 {
		t.Fatalf("allowlist version %d after a reset, want 0", v)
	}
	if m, _ := filepath.Glob(r.cfg.Gate.AllowlistFile + ".corrupt-*"); len(m) != 1 {
		t.Fatalf("damaged file kept as %v, want one .corrupt- file", m)
	}
	waitUntil(t, "the allowlist.reset record at the hub", func() bool {
		for _, rec := range hub.Records(t, "gate-1") {
			if rec.Kind == gate.KindAllowlistReset && rec.Class == wire.ClassCritical {
				return true
			}
		}
		return false
	})
}
