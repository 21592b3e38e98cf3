package pgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	bin, err := Find()
	if err != nil {
		t.Skipf("no PostgreSQL: %v", err)
	}
	if !hasServerBins(bin) {
		t.Fatalf("Find returned %s without initdb and pg_ctl", bin)
	}
}

// psql runs a query against c's database db and returns its output.
func psql(t *testing.T, c *Cluster, db, query string) string {
	t.Helper()
	tool, err := exec.LookPath("psql")
	if err != nil {
		if tool = filepath.Join(c.bin, "psql"); !hasFile(tool) {
			t.Skip("psql not installed")
		}
	}
	out, err := exec.Command(tool, "-X", "-A", "-t", "-d", c.DSN(db), "-c", query).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

func hasFile(p string) bool { _, err := os.Stat(p); return err == nil }

func TestClusterLifecycle(t *testing.T) {
	c := Start(t)
	if err := c.CreateDatabase("kiosk_test"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDatabase("kiosk_test"); err == nil {
		t.Fatal("creating an existing database succeeded")
	}
	if got := psql(t, c, "kiosk_test", "SHOW fsync"); got != "on" {
		t.Errorf("fsync = %q, want on", got)
	}
	if got := psql(t, c, "kiosk_test", "SHOW listen_addresses"); got != "127.0.0.1" {
		t.Errorf("listen_addresses = %q", got)
	}
	if got, _ := strconv.Atoi(psql(t, c, "kiosk_test", "SHOW max_connections")); got < 100 {
		t.Errorf("max_connections = %d, want >= 100", got)
	}
	if got := psql(t, c, "kiosk_test", "CREATE TABLE t(x int); INSERT INTO t VALUES (42); SELECT x FROM t"); !strings.HasSuffix(got, "42") {
		t.Errorf("round trip = %q", got)
	}
	if !strings.HasPrefix(c.DSN("x"), "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(c.DSN("x"), "/x?sslmode=disable") {
		t.Errorf("DSN = %s", c.DSN("x"))
	}
	dir := c.Dir()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if hasFile(dir) {
		t.Errorf("Stop left %s", dir)
	}
}

// TestNewKeepsDir checks New in a caller's directory: Stop leaves it.
func TestNewKeepsDir(t *testing.T) {
	if _, err := Find(); err != nil {
		t.Skipf("no PostgreSQL: %v", err)
	}
	dir, err := os.MkdirTemp("", "pgtest-new-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if !hasFile(filepath.Join(dir, "data", "PG_VERSION")) {
		t.Error("Stop removed the caller's directory")
	}
}
