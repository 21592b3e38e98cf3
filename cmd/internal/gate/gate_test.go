package gate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/gate"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/gatesim"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

const gateTOML = `
[agent]
id = "gate-1"
data_dir = "data"

[hub]
broker = "%s"
plaintext = true
root = "kioskedge/test"
backoff_min = "30ms"
backoff_max = "300ms"
ack_timeout = "3s"

[localapi]
enabled = false

[privacy]
site_key_file = "site.key"

[gate]
unlock_pulse = "300ms"

[[door]]
id = "main"
groups = ["north"]
lock = "fail_safe"
relay = "sim:relay"
contact = "sim:contact"
exit = "sim:exit"
fire = "sim:fire"

[[wiegand]]
name = "main-in"
door = "main"
d0 = "sim:d0"
d1 = "sim:d1"
complete_at = 26
`

// rig is one agent running a gate over simulated hardware.
type rig struct {
	cfg  config.Config
	hw   *gatesim.Gate
	node *node.Node
	gate *gate.Gate
	key  []byte
}

func startRig(t *testing.T, brokerURL string) *rig {
	t.Helper()
	return startRigIn(t, brokerURL, t.TempDir(), nil)
}

// startRigIn starts the rig in dir; before, when set, runs after the
// config is written and before the agent opens its files.
func startRigIn(t *testing.T, brokerURL, dir string, before func(cfg config.Config)) *rig {
	t.Helper()
	key, err := privacy.NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := privacy.WriteSiteKey(filepath.Join(dir, "site.key"), key); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kioskd.toml")
	if err := os.WriteFile(path, fmt.Appendf(nil, gateTOML, brokerURL), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(cfg)
	}
	hw, err := gatesim.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(codec.Close)
	n, err := node.Open(node.Options{Config: cfg, Version: "test", Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.Open(gate.Options{Config: cfg, Node: n, Lines: hw.Lines})
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nodeDone, gateDone := make(chan error, 1), make(chan error, 1)
	go func() { nodeDone <- n.Run(ctx) }()
	go func() { gateDone <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-gateDone; err != nil {
			t.Errorf("gate Run: %v", err)
		}
		if err := <-nodeDone; err != nil {
			t.Errorf("node Run: %v", err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("gate Close: %v", err)
		}
		n.Close()
	})
	return &rig{cfg: cfg, hw: hw, node: n, gate: g, key: key}
}

// allow loads a snapshot holding the H10301 cards given into the gate's
// store, as the allowlist receiver would.
func (r *rig) allow(t *testing.T, version uint64, cards ...[2]uint32) {
	t.Helper()
	var es []allowlist.Entry
	for _, c := range cards {
		cred := credential.Credential{Kind: credential.Wiegand, Encoding: "H10301", Number: fmt.Sprintf("%03d-%05d", c[0], c[1])}
		k, err := allowlist.ParseKey(privacy.KeyedHash(r.key, cred))
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, allowlist.Entry{Key: k, DoorGroups: []uint32{allowlist.GroupID("north")}})
	}
	chunks, err := allowlist.EncodeSnapshot(sortedEntries(es), nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	a := r.gate.Allowlist
	if err := a.BeginSnapshot(version, uint64(len(chunks)), sum(chunks)); err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks {
		if err := a.PutChunk(uint64(i), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CommitSnapshot(); err != nil {
		t.Fatal(err)
	}
}

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
	r := startRig(t, b.URL())
	r.allow(t, 1, [2]uint32{12, 3456})
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

	if _, err := r.hw.Swipe("main-in", gpiosim.H10301(12, 3456), gpiosim.TxOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the door released for a known card", func() bool { return !door.Locked() })
	waitUntil(t, "the door secured after the pulse", door.Locked)

	if _, err := r.hw.Swipe("main-in", gpiosim.H10301(12, 9999), gpiosim.TxOptions{}); err != nil {
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
	r := startRigIn(t, b.URL(), t.TempDir(), func(cfg config.Config) {
		if err := os.MkdirAll(filepath.Dir(cfg.Gate.AllowlistFile), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg.Gate.AllowlistFile, bytes.Repeat([]byte("not a bbolt file "), 1000), 0o600); err != nil {
			t.Fatal(err)
		}
	})
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
