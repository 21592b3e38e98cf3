package hubpg_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskedge/kioskedge/sync/hubalert"
	"github.com/kioskedge/kioskedge/sync/hubalert/hubalerttest"
	"github.com/kioskedge/kioskedge/sync/hubpg"
	"github.com/kioskedge/kioskedge/testhw/pgtest"
)

func openAlertState(t *testing.T, dsn, name string) *hubpg.AlertState {
	t.Helper()
	a, err := hubpg.OpenAlertState(context.Background(), dsn, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func TestAlertState(t *testing.T) {
	pg := pgtest.Start(t)
	n := 0
	freshDB := func(t *testing.T) string {
		t.Helper()
		n++
		db := "alerts" + string(rune('a'+n))
		if err := pg.CreateDatabase(db); err != nil {
			t.Fatal(err)
		}
		return pg.DSN(db)
	}
	var _ hubalert.StateStore = (*hubpg.AlertState)(nil)

	t.Run("contract", func(t *testing.T) {
		dsn := freshDB(t)
		hubalerttest.StateStoreContract(t, func(t *testing.T) (hubalert.StateStore, hubalert.StateStore) {
			return openAlertState(t, dsn, "root"), openAlertState(t, dsn, "root")
		})
	})

	t.Run("deployments apart", func(t *testing.T) {
		dsn := freshDB(t)
		a, b := openAlertState(t, dsn, "root-a"), openAlertState(t, dsn, "root-b")
		if err := a.Save([]byte("a")); err != nil {
			t.Fatal(err)
		}
		if doc, err := b.Load(); err != nil || doc != nil {
			t.Fatalf("another deployment loads %q, %v", doc, err)
		}
	})

	t.Run("fenced by term", func(t *testing.T) {
		dsn := freshDB(t)
		old, cur := openAlertState(t, dsn, "root"), openAlertState(t, dsn, "root")
		if err := old.SetTerm(1); err != nil {
			t.Fatal(err)
		}
		if err := old.Save([]byte("term 1")); err != nil {
			t.Fatal(err)
		}
		if err := cur.SetTerm(2); err != nil {
			t.Fatal(err)
		}
		// Claimed: the deposed leader's last save is refused even before
		// the new one saved.
		if err := old.Save([]byte("stale")); !errors.Is(err, hubpg.ErrFenced) {
			t.Fatalf("a deposed leader's save after the claim: %v", err)
		}
		if doc, err := cur.Load(); err != nil || string(doc) != "term 1" {
			t.Fatalf("the new leader loads %q, %v", doc, err)
		}
		if err := cur.Save([]byte("term 2")); err != nil {
			t.Fatal(err)
		}
		if err := old.Save([]byte("stale")); !errors.Is(err, hubpg.ErrFenced) {
			t.Fatalf("a deposed leader's save: %v", err)
		}
		if doc, err := old.Load(); err != nil || string(doc) != "term 2" {
			t.Fatalf("loads %q, %v", doc, err)
		}
		if err := cur.Save([]byte("term 2 again")); err != nil {
			t.Fatalf("the same term saves again: %v", err)
		}
	})

	t.Run("reconnects", func(t *testing.T) {
		dsn := freshDB(t)
		a := openAlertState(t, dsn, "root")
		if err := a.Save([]byte("kept")); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("terminated %d sessions (%v)", n, err)
		}
		if doc, err := a.Load(); err != nil || string(doc) != "kept" {
			t.Fatalf("after the session was terminated: %q, %v", doc, err)
		}
	})

	t.Run("record ranges", func(t *testing.T) {
		dsn := freshDB(t)
		lead, other, elsewhere := openAlertState(t, dsn, "root"), openAlertState(t, dsn, "root"), openAlertState(t, dsn, "root-b")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		l, err := lead.Listen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := elsewhere.NotifyRecords([]hubpg.RecordRange{{Agent: "x", First: 1, Last: 1}}); err != nil {
			t.Fatal(err)
		}
		want := []hubpg.RecordRange{{Agent: "a1", First: 1, Last: 25}, {Agent: "a2", First: 26, Last: 50}, {Agent: "a1", First: 26, Last: 26}}
		if err := other.NotifyRecords(want[:2]); err != nil {
			t.Fatal(err)
		}
		if err := other.NotifyRecords(nil); err != nil {
			t.Fatal(err)
		}
		if err := lead.NotifyRecords(want[2:]); err != nil { // its own reach it too
			t.Fatal(err)
		}
		for i, w := range want {
			got, err := l.Next(ctx)
			if err != nil || got != w {
				t.Fatalf("range %d: %+v, %v; want %+v", i, got, err, w)
			}
		}
		short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
		defer stop()
		if got, err := l.Next(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("nothing more notified, yet Next returned %+v, %v", got, err)
		}
	})

	t.Run("bad options", func(t *testing.T) {
		if _, err := hubpg.OpenAlertState(context.Background(), pg.DSN("postgres"), ""); !errors.Is(err, hubpg.ErrLeaderOptions) {
			t.Errorf("no name: %v", err)
		}
		if _, err := hubpg.OpenAlertState(context.Background(), "postgres://%zz", "x"); !errors.Is(err, hubpg.ErrLeaderOptions) {
			t.Errorf("bad dsn: %v", err)
		}
	})
}
