package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/agent/allowsync"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

// Test credentials: made up, never printed.
const (
	cardA = "wiegand:H10301:123-45678"
	idB   = "idcard:11010119900307001x"
	ssnC  = "sscard:ssn:A1234567890"
)

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func siteKeyFile(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	k, err := privacy.NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "site.key")
	if err := privacy.WriteSiteKey(p, k); err != nil {
		t.Fatal(err)
	}
	return p, k
}

func keyOf(t *testing.T, siteKey []byte, c credential.Credential) allowlist.Key {
	t.Helper()
	k, err := allowlist.ParseKey(privacy.KeyedHash(siteKey, c))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const schedulesCSV = `id,windows,holidays
1,Mon-Fri 07:00-22:00; Sat 09:00-12:00,2026-01-01;2026-10-01
2,Fri 22:00-06:30,
`

// agentSide is a gate's allowlist wiring by hand, as kioskd does it: a
// store, a syncer, and an MQTT session delivering the allowlist topic.
type agentSide struct {
	store *allowlist.Allowlist
	sync  *allowsync.Syncer
	stop  func()
}

func startAgentSide(t *testing.T, url, id, path string) *agentSide {
	t.Helper()
	store, err := allowlist.Open(path, allowlist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	topics := wire.Topics{Root: testRoot, Agent: id}
	var sess *uplink.Session
	connected := make(chan struct{})
	var connectOnce sync.Once
	sy, err := allowsync.New(allowsync.Options{Store: store, Request: func(r wire.AllowlistRequest) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		// The answer to a lost request comes with the next connect's Resync.
		sess.PublishAsync(uplink.Message{Topic: topics.AllowlistRequest(), QoS: 1, Payload: b})
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	sess, err = uplink.NewSession(uplink.SessionOptions{Broker: url, ClientID: id, AllowPlaintext: true, Backoff: fastBackoff,
		OnConnect: func(context.Context, *uplink.Session) {
			sy.Resync()
			connectOnce.Do(func() { close(connected) })
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{topics.Allowlist(), wire.GroupAllowlistTopic(testRoot, "all")} {
		if err := sess.Subscribe(topic, 1, func(_ string, p []byte) { sy.Handle(p) }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := sess.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() {
		if err := sy.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	a := &agentSide{store: store, sync: sy}
	var once sync.Once
	a.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err := store.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(a.stop)
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: not connected within 20s", id)
	}
	return a
}

const testRoot = "kioskedge/al"

// settled waits for a gate's counters to show deltas and snapshots applied
// (the store's version moves just before the counters do).
func settled(t *testing.T, a *agentSide, deltas, snapshots uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := a.sync.Stats()
		if st.DeltasApplied == deltas && st.SnapshotsApplied == snapshots {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %d deltas and %d snapshots applied", st, deltas, snapshots)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var fastBackoff = uplink.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, StableAfter: time.Second}

func TestAllowlistPushEndToEnd(t *testing.T) {
	broker.Each(t, testAllowlistPushEndToEnd)
}

func testAllowlistPushEndToEnd(t *testing.T, b *broker.Broker) {
	dir := t.TempDir()
	keyPath, siteKey := siteKeyFile(t, dir)
	listDir := filepath.Join(dir, "lists")
	sched := writeFile(t, dir, "schedules.csv", schedulesCSV)

	srv, err := hubrun.New(hubrun.Config{Broker: b.URL(), AllowPlaintext: true, Backoff: fastBackoff, ClientID: "hub",
		Root: testRoot, DBPath: filepath.Join(dir, "hub.db"), AllowlistDir: listDir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-hubDone; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})

	g1 := startAgentSide(t, b.URL(), "gate-1", filepath.Join(dir, "g1.db"))
	g2Path := filepath.Join(dir, "g2.db")
	g2 := startAgentSide(t, b.URL(), "gate-2", g2Path)

	head := "credential,valid_from,valid_to,groups,schedule,staff,apb\n"
	push := func(csvText string, targets ...string) string {
		t.Helper()
		f := writeFile(t, dir, "list.csv", head+csvText)
		args := []string{"allowlist", "push", "-csv", f, "-schedules", sched, "-site-key", keyPath, "-dir", listDir, "-tz", "UTC"}
		if len(targets) > 0 {
			args = append(args, "-broker", b.URL(), "-plaintext", "-root", testRoot, "-timeout", "20s")
			for _, a := range targets {
				if g, ok := strings.CutPrefix(a, "group:"); ok {
					args = append(args, "-group", g)
				} else {
					args = append(args, "-agent", a)
				}
			}
		}
		var out bytes.Buffer
		if err := run(args, &out); err != nil {
			t.Fatalf("push: %v\n%s", err, out.String())
		}
		for _, secret := range []string{"45678", "1234567890", "119900307"} {
			if strings.Contains(out.String(), secret) {
				t.Fatalf("push output shows a credential number: %s", out.String())
			}
		}
		return out.String()
	}
	has := func(a *agentSide, c credential.Credential) bool {
		_, ok, err := a.store.Lookup(keyOf(t, siteKey, c))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	card := credential.Credential{Kind: credential.Wiegand, Encoding: "H10301", Number: "123-45678"}
	id := credential.Credential{Kind: credential.IDCard, Number: "11010119900307001X"}
	ssn := credential.Credential{Kind: credential.SSCard, Encoding: "ssn", Number: "A1234567890"}

	// Version 1, sent now to both gates: a snapshot.
	out := push(cardA+",2026-01-01,,1;2,1,yes,\n"+idB+",,,2,,,\n", "gate-1", "gate-2")
	if !strings.Contains(out, "published allowlist version 1") || !strings.Contains(out, "sent version 1 snapshot on kioskedge/al/v1/gate-2/allowlist") {
		t.Fatalf("push output: %s", out)
	}
	for _, a := range []*agentSide{g1, g2} {
		eventually(t, "version 1 on the gates", func() bool { return a.store.Version() == 1 })
		if !has(a, card) || !has(a, id) || has(a, ssn) || a.store.Count() != 2 {
			t.Fatal("version 1 content wrong")
		}
	}
	e, _, _ := g1.store.Lookup(keyOf(t, siteKey, card))
	if !e.Staff || e.Schedule != 1 || len(e.DoorGroups) != 2 {
		t.Fatalf("card entry %+v", e)
	}
	if s, ok, err := g1.store.Schedule(2); err != nil || !ok || len(s.Windows) != 2 {
		t.Fatalf("schedule 2: %+v %v %v", s, ok, err)
	}

	// gate-2 goes offline; two versions are pushed to gate-1 only.
	g2.stop()
	push(cardA+",2026-01-01,,1;2,1,yes,\n"+idB+",,,2,,,\n"+ssnC+",,,3,,,\n", "gate-1")
	out = push(cardA+",2026-01-01,,1;2;4,1,yes,\n"+ssnC+",,,3,,,\n", "gate-1")
	if !strings.Contains(out, "delta from 2: 1 upserts, 1 deletes") || !strings.Contains(out, "sent version 3 delta on kioskedge/al/v1/gate-1/allowlist") {
		t.Fatalf("push output: %s", out)
	}
	eventually(t, "version 3 on gate-1", func() bool { return g1.store.Version() == 3 })
	settled(t, g1, 2, 1)

	// gate-2 reconnects with its store at version 1 and catches up by deltas.
	g2 = startAgentSide(t, b.URL(), "gate-2", g2Path)
	eventually(t, "gate-2 caught up", func() bool { return g2.store.Version() == 3 })
	if !has(g2, card) || has(g2, id) || !has(g2, ssn) || g2.store.Count() != 2 {
		t.Fatal("version 3 content wrong on gate-2")
	}
	e, _, _ = g2.store.Lookup(keyOf(t, siteKey, card))
	if len(e.DoorGroups) != 3 {
		t.Fatalf("updated card entry %+v", e)
	}
	settled(t, g2, 2, 0) // a catch-up by deltas
	// The hub counts an answer once the broker acknowledged all of it.
	eventually(t, "the hub counts the deltas it sent", func() bool { return srv.Allowlist().Stats().Deltas >= 2 })

	// A new gate gets the latest snapshot from the hub on its own.
	g3 := startAgentSide(t, b.URL(), "gate-3", filepath.Join(dir, "g3.db"))
	eventually(t, "gate-3 has the list", func() bool { return g3.store.Version() == 3 })
	settled(t, g3, 0, 1)
	if !has(g3, ssn) || g3.store.Count() != 2 {
		t.Fatal("gate-3 content wrong")
	}

	// Version 4 to the group every gate is in: one publish, a delta.
	push(cardA+",2026-01-01,,1;2;4,1,yes,\n", "group:all")
	for _, a := range []*agentSide{g1, g2, g3} {
		eventually(t, "version 4 on every gate", func() bool { return a.store.Version() == 4 })
		if has(a, ssn) || a.store.Count() != 1 {
			t.Fatal("version 4 content wrong")
		}
	}
	settled(t, g3, 1, 1)

	// show lists the versions.
	var show bytes.Buffer
	if err := run([]string{"allowlist", "show", "-dir", listDir}, &show); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(show.String()), "\n"); len(lines) != 5 || !strings.Contains(lines[3], "from 2: +1 -1") {
		t.Fatalf("show:\n%s", show.String())
	}
}

func TestAllowlistCmdErrors(t *testing.T) {
	dir := t.TempDir()
	keyPath, _ := siteKeyFile(t, dir)
	f := writeFile(t, dir, "l.csv", "credential\n"+cardA+"\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"allowlist"}, "subcommand"},
		{[]string{"allowlist", "pull"}, "unknown subcommand"},
		{[]string{"allowlist", "push", "-csv", f}, "required"},
		{[]string{"allowlist", "push", "-csv", f, "-site-key", keyPath, "-dir", dir, "-agent", "g"}, "-agent and -group need -broker"},
		{[]string{"allowlist", "push", "-csv", f, "-site-key", keyPath, "-dir", dir + "/l", "-version", "0", "-tz", "Mars/Base"}, "-tz"},
		{[]string{"allowlist", "show"}, "-dir is required"},
		{[]string{"allowlist", "show", "-dir", filepath.Join(dir, "none")}, "no such file"},
	} {
		var out bytes.Buffer
		if err := run(c.args, &out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
	// -version must go above the latest.
	l := filepath.Join(dir, "lists")
	base := []string{"allowlist", "push", "-csv", f, "-site-key", keyPath, "-dir", l}
	if err := run(append(base, "-version", "5"), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := run(append(base, "-version", "5"), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not above the latest") {
		t.Fatal(err)
	}
}
