package uplink

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
)

// publishHubStatus publishes the hub's retained status (hub-protocol.md
// §12) as the hub application does, from a session of its own.
func publishHubStatus(t *testing.T, url, payload string) {
	t.Helper()
	s, err := NewSession(SessionOptions{Broker: url, ClientID: "hubstatus-" + t.Name(), AllowPlaintext: true,
		Backoff: Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "status publisher connected", s.Connected)
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := s.Publish(pctx, Message{Topic: hubStatusTopic(testRoot), QoS: 1, Retained: true, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
}

// The agent's batches go out while no hub is subscribed (lost: clean
// sessions); the hub comes back and says so on its status; the agent
// resends at once. The ack timeout is an hour, so nothing but the hub
// status can explain the delivery.
func TestUplinkResendsWhenTheHubComesOnline(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		src := newMemSource(50)
		u, stop := newTestUplink(t, b.URL(), src, func(o *Options) { o.AckTimeout = time.Hour })
		defer stop()
		// Birth, health and the one batch acknowledged by the broker,
		// which had no subscriber for the batch.
		waitFor(t, "the batch sent to no hub", func() bool {
			return u.Stats().SentThrough == 50 && u.sess.Stats().Published >= 3
		})
		hub := startHub(t, b.URL(), testRoot, false)
		publishHubStatus(t, b.URL(), `{"state":"online","time":"2026-11-28T20:00:00Z","version":"t"}`)
		waitFor(t, "the records acked", func() bool { return src.AckedThrough() == 50 })
		st := u.Stats()
		if st.HubRewinds < 1 || st.AckTimeouts != 0 || st.Reconnects != 0 {
			t.Fatalf("stats %+v", st)
		}
		if hub.distinct() != 50 {
			t.Fatalf("hub has %d distinct records", hub.distinct())
		}
	})
}

// The hub dies (no offline seen) and another comes up while the agent
// stays connected: its online status carries a new time, and the agent
// resends what went out in between.
func TestUplinkResendsWhenANewHubSaysOnline(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	hub1 := startHub(t, b.URL(), testRoot, false)
	publishHubStatus(t, b.URL(), `{"state":"online","time":"2026-11-28T20:00:00Z"}`)
	src := newMemSource(30)
	u, stop := newTestUplink(t, b.URL(), src, func(o *Options) { o.AckTimeout = time.Hour })
	defer stop()
	waitFor(t, "first records acked", func() bool { return src.AckedThrough() == 30 })
	hub1.stop()
	published := u.sess.Stats().Published
	src.Append(20)
	waitFor(t, "the new batch sent to no hub", func() bool {
		return u.Stats().SentThrough == 50 && u.sess.Stats().Published > published
	})
	rewinds := u.Stats().HubRewinds
	hub2 := startHub(t, b.URL(), testRoot, false)
	hub2.mu.Lock()
	hub2.contig = 30 // what the first hub stored: the fake hub has no store of its own
	hub2.mu.Unlock()
	publishHubStatus(t, b.URL(), `{"state":"online","time":"2026-11-28T20:05:00Z"}`)
	waitFor(t, "the new records acked", func() bool { return src.AckedThrough() == 50 })
	if st := u.Stats(); st.HubRewinds <= rewinds || st.AckTimeouts != 0 || st.Reconnects != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Which hub status messages make the drain resend.
func TestUplinkHubStatusTriggers(t *testing.T) {
	u, err := New(Options{Session: SessionOptions{Broker: "tcp://127.0.0.1:1", AllowPlaintext: true},
		Root: testRoot, Agent: "box-1", BootID: "b", BdSeqPath: t.TempDir() + "/bdseq"}, newMemSource(0))
	if err != nil {
		t.Fatal(err)
	}
	on := func(ts string) string { return `{"state":"online","time":"` + ts + `"}` }
	for i, tc := range []struct {
		payload  string
		retained bool // sent on subscribing (a connect), not live
		want     bool
	}{
		{"garbage", false, false},
		{`{"state":"offline","time":"2026-11-28T20:00:00Z","reason":"will"}`, false, false},
		{on("2026-11-28T20:00:00Z"), false, true},  // online for the first time
		{on("2026-11-28T20:00:00Z"), false, false}, // the same status again
		{on("2026-11-28T20:00:00Z"), true, false},  // and again on a reconnect
		{on("2026-11-28T20:01:00Z"), false, true},  // a new hub connection
		{`{"state":"offline","reason":"shutdown"}`, false, false},
		{on("2026-11-28T20:01:00Z"), false, true}, // online after offline, even with the same time
		{"", false, false}, // the retained status cleared
		{`{"state":"online","time":"x","pad":"` + strings.Repeat("a", maxHubStatus) + `"}`, false, false}, // oversized
		{on("2026-11-28T20:01:00Z"), false, false},
		// On a connect, a retained online (even a new one) is remembered
		// only: the hub was subscribed before anything this connection sent.
		{on("2026-11-28T20:02:00Z"), true, false},
		{on("2026-11-28T20:02:00Z"), false, false},
		{`{"state":"offline","reason":"will"}`, true, false},
		{on("2026-11-28T20:03:00Z"), false, true},
	} {
		u.onHubStatus(hubStatusTopic(testRoot), []byte(tc.payload), tc.retained)
		if got := u.hubBack.Swap(false); got != tc.want {
			t.Errorf("step %d %.60q: resend %v, want %v", i, tc.payload, got, tc.want)
		}
	}
	if got, want := hubStatusTopic("kioskedge/prov"), "kioskedge/prov/"+wire.Version+"/$hub/status"; got != want {
		t.Errorf("hubStatusTopic = %q, want %q", got, want)
	}
}

// A broker whose ACL keeps agents out of the hub's status: the uplink
// carries on without it (resending on the ack timeout only). Mosquitto
// 2.0 grants such a subscription and delivers nothing; a broker that
// refuses it (SUBACK 0x80) makes the session log the refusal and keep the
// connection (subscribeOptional) instead of dropping every connection.
func TestUplinkHubStatusDeniedByACL(t *testing.T) {
	t.Parallel()
	acl := filepath.Join(t.TempDir(), "acl")
	// Anonymous clients may use their own tree only.
	if err := os.WriteFile(acl, []byte("topic readwrite "+testRoot+"/v1/box-1/#\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := "acl_file " + acl
	if os.Geteuid() == 0 {
		conf += "\nuser root" // else mosquitto drops to a user that cannot read the test's temp dir
	}
	b := broker.ForTest(t, broker.Options{Kind: broker.Mosquitto, MosquittoConf: conf})
	var logs logbuf.Buffer
	src := newMemSource(10)
	u, stop := newTestUplink(t, b.URL(), src, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	defer stop()
	waitFor(t, "the birth", func() bool { return u.Stats().Births >= 1 })
	waitFor(t, "the batch sent", func() bool { return u.Stats().SentThrough == 10 })
	if st := u.sess.Stats(); !st.Connected || st.Reconnects != 0 || st.ConnectionsLost != 0 {
		t.Fatalf("session stats %+v", st)
	}
	t.Logf("hub status subscription refused by the broker: %v", strings.Contains(logs.String(), "optional subscription refused"))
}
