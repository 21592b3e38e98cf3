package hubpg

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/kioskedge/kioskedge/testhw/pgtest"
)

// cluster is shared by the package's tests (one initdb per test binary);
// each test gets its own database from newDB. nil when PostgreSQL is not
// installed: newDB then applies pgtest.Start's policy (skip loudly, or
// fail under CI).
var cluster *pgtest.Cluster

var dbCounter atomic.Int64

func TestMain(m *testing.M) {
	code := func() int {
		if _, err := pgtest.Find(); err != nil {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "hubpg-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		c, err := pgtest.New(dir, pgtest.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			if err := c.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
		cluster = c
		return m.Run()
	}()
	os.Exit(code)
}

// newDB creates a fresh database and returns its DSN.
func newDB(t testing.TB) string {
	t.Helper()
	if cluster == nil {
		pgtest.Start(t) // skips or fails: the binaries are missing
		t.Fatal("pgtest found PostgreSQL that TestMain did not")
	}
	name := fmt.Sprintf("hubpg_%d", dbCounter.Add(1))
	if err := cluster.CreateDatabase(name); err != nil {
		t.Fatal(err)
	}
	return cluster.DSN(name)
}

// openDB opens a store on dsn and closes it at the end of the test.
func openDB(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}
