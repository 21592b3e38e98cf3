package hubrun

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubpg"
	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/uplink/uplinktest"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/pgtest"
)

// startPGHub runs a hub on the PostgreSQL database dsn in share group
// "hubs".
func startPGHub(t *testing.T, url, dsn, clientID string) *running {
	t.Helper()
	return runHub(t, Config{Broker: url, AllowPlaintext: true, Backoff: fast, ClientID: clientID,
		Root: root, DB: dsn, ShareGroup: "hubs", NoClock: true})
}

// outboxAgent is a real agent's store-and-forward path: an outbox drained
// by an uplink.
type outboxAgent struct {
	id string
	ob *outbox.Outbox
}

// startOutboxAgent opens the outbox, appends backlog records (sent in
// full batches once the uplink runs) and starts the uplink.
func startOutboxAgent(t *testing.T, url, id string, backlog int) *outboxAgent {
	// Small batches and a small window: many batches, split by the
	// shared subscription between the two hubs.
	return startUplinkAgent(t, url, id, 25, func(a *outboxAgent) { a.append(t, backlog) })
}

// startUplinkAgent opens an outbox, lets fill append to it, and drains it
// with an uplink (batches of batchRecords, a window of 4) until the test
// ends.
func startUplinkAgent(t *testing.T, url, id string, batchRecords int, fill func(*outboxAgent)) *outboxAgent {
	t.Helper()
	a := &outboxAgent{id: id}
	uplinktest.Agent(t, uplink.Options{
		Session: uplink.SessionOptions{Broker: url, AllowPlaintext: true, Backoff: fast},
		Root:    root, Agent: id, BootID: "boot-" + id, Version: "test",
		BatchRecords: batchRecords, Window: 4, AckTimeout: 3 * time.Second, HealthInterval: time.Hour,
	}, func(ob *outbox.Outbox) { a.ob = ob; fill(a) })
	return a
}

func (a *outboxAgent) append(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		_, err := a.ob.Append(context.Background(), wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
			Time: time.Unix(1_700_000_000, 0), Body: fmt.Appendf(nil, `{"i":%d}`, i)})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Two hubs on one PostgreSQL database share the agents' batches through a
// shared subscription: every record is stored exactly once, every agent
// is acked through its last record, and both hubs took part.
func TestTwoHubsOnePostgres(t *testing.T) {
	pg := pgtest.Start(t)
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		db := "hubs_" + string(b.Kind())
		if err := pg.CreateDatabase(db); err != nil {
			t.Fatal(err)
		}
		dsn := pg.DSN(db)
		hubs := []*running{startPGHub(t, b.URL(), dsn, "hub-a"), startPGHub(t, b.URL(), dsn, "hub-b")}
		if _, ok := hubs[0].srv.Store().(*hubpg.Store); !ok {
			t.Fatalf("a postgres:// DB opened %T", hubs[0].srv.Store())
		}
		const agents, records = 4, 400
		var as []*outboxAgent
		for i := range agents {
			as = append(as, startOutboxAgent(t, b.URL(), fmt.Sprintf("kiosk-%d", i), records*3/4))
		}
		for _, a := range as { // more while the backlog drains
			a.append(t, records/4)
		}
		for _, a := range as {
			eventually(t, a.id+" acked through the end", func() bool { return a.ob.AckedThrough() == records })
		}
		store := hubs[0].srv.Store()
		for _, a := range as {
			st, ok := store.AgentState(a.id)
			if !ok || st.Received != records || st.Contiguous != records || st.Highest != records {
				t.Fatalf("%s: state %+v", a.id, st)
			}
			next := uint64(1)
			err := hubs[1].srv.Store().ForEach(a.id, 1, func(seq uint64, _ []byte) error {
				if seq != next {
					return fmt.Errorf("record %d where %d was expected", seq, next)
				}
				next++
				return nil
			})
			if err != nil || next != records+1 {
				t.Fatalf("%s: records 1..%d: %v", a.id, next-1, err)
			}
		}
		var stored [2]uint64
		for i, h := range hubs {
			s := h.srv.Hub().Stats()
			stored[i] = s.Records
			t.Logf("hub %d: %d batches, %d records stored, %d duplicates", i, s.Batches, s.Records, s.Duplicates)
		}
		if stored[0] == 0 || stored[1] == 0 {
			t.Fatalf("the shared subscription did not split the ingest: %v", stored)
		}
		if stored[0]+stored[1] != agents*records {
			t.Fatalf("hubs stored %d records in all, want %d", stored[0]+stored[1], agents*records)
		}
	})
}

func TestConfigDB(t *testing.T) {
	if !IsPostgresURL("postgres://u:p@h/db") || !IsPostgresURL("postgresql://h/db") || IsPostgresURL("/var/lib/hubd.db") {
		t.Fatal("IsPostgresURL")
	}
	dir := t.TempDir()
	// DB as a path is the bbolt store, as DBPath is.
	srv, err := New(Config{Broker: "tcp://127.0.0.1:1", AllowPlaintext: true, Root: root, DB: filepath.Join(dir, "a.db"), NoClock: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.Store().(interface{ Path() string }); !ok {
		t.Errorf("DB as a path opened %T, want the bbolt store", srv.Store())
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"no db":     {Broker: "tcp://127.0.0.1:1", Root: root},
		"both":      {Broker: "tcp://127.0.0.1:1", Root: root, DB: "postgres://h/db", DBPath: filepath.Join(dir, "b.db")},
		"bad url":   {Broker: "tcp://127.0.0.1:1", Root: root, DB: "postgres://%zz"},
		"no broker": {Root: root, DB: filepath.Join(dir, "c.db")},
	} {
		cfg.AllowPlaintext = true
		if srv, err := New(cfg); err == nil {
			srv.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}
