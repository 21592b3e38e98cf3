package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/export"
	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/certs"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

const importRoot = "kioskedge/import"

var importBackoff = uplink.Backoff{Min: 30 * time.Millisecond, Max: 300 * time.Millisecond, StableAfter: time.Second}

// kioskctlBin builds cmd/kioskctl once per test binary: the end-to-end
// test runs the real command a technician runs.
var kioskctlBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kioskctl-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kioskctl")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/kioskedge/kioskedge/cmd/kioskctl").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build kioskctl: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := kioskctlBin(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// importBox writes an agent config file (id certs.ClientCN, the test
// PKI's client certificate) and returns its path and data directory.
func importBox(t *testing.T, pki *certs.PKI) (cfgFile, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	cfgFile, dataDir = filepath.Join(dir, "kioskd.toml"), filepath.Join(dir, "data")
	cfg := fmt.Sprintf(`[agent]
id = %q
data_dir = %q
[hub]
broker = "tcp://127.0.0.1:1"
plaintext = true
root = %q
cert_file = %q
key_file = %q
ack_timeout = "2s"
keepalive = "2s"
batch_records = 300
`, certs.ClientCN, dataDir, importRoot, pki.Client.CertFile, pki.Client.KeyFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgFile, dataDir
}

// runNode runs the agent on c until stop is called or the test ends;
// appending n records (concurrently) first. stop waits for Run and closes
// the node.
func runNode(t *testing.T, c config.Config, n int) (nd *node.Node, stop func()) {
	t.Helper()
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	nd, err = node.Open(node.Options{Config: c, Version: "import-test", Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	appendRecords(t, nd, n)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node run: %v", err)
			}
			if err := nd.Close(); err != nil {
				t.Errorf("node close: %v", err)
			}
			codec.Close()
		})
	}
	t.Cleanup(stop)
	return nd, stop
}

func appendRecords(t *testing.T, nd *node.Node, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for i := p; i < n; i += 8 {
				r := wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical, Time: time.Now(),
					Body: fmt.Appendf(nil, `{"door":"d%d","granted":true}`, i%3)}
				if _, err := nd.Append(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// kioskctlExport runs the real kioskctl outbox export and returns the file.
func kioskctlExport(t *testing.T, cfgFile, usb string) (file string, count uint64) {
	t.Helper()
	bin, err := kioskctlBin()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--config", cfgFile, "--json", "outbox", "export", "--out", usb)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kioskctl outbox export: %v\n%s", err, stderr.String())
	}
	var res struct {
		File  string `json:"file"`
		Count uint64 `json:"count"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	return res.File, res.Count
}

func hubdImport(args ...string) (string, error) {
	var stderr bytes.Buffer
	err := run(append([]string{"import"}, args...), &stderr)
	return stderr.String(), err
}

// The "must reach": outbox export → hubd import → later MQTT sync
// of the same records: the hub holds each record once, and the agent's
// outbox empties.
func TestExportImportThenMQTTHoldsEachRecordOnce(t *testing.T) {
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		pki := certs.ForTest(t)
		cfgFile, _ := importBox(t, pki)
		c, err := config.Load(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		// The test hub speaks plaintext MQTT only; the certificate stays in
		// the config file, where kioskctl signs the export with it.
		c.Hub.CertFile, c.Hub.KeyFile = "", ""
		c.Hub.BackoffMin, c.Hub.BackoffMax, c.Hub.BackoffStable = config.Duration(importBackoff.Min), config.Duration(importBackoff.Max), config.Duration(importBackoff.StableAfter)

		// Weeks offline: the broker is unreachable while the box records.
		const offline, online = 1500, 120
		_, stop := runNode(t, c, offline)
		stop()

		usb := t.TempDir()
		file, count := kioskctlExport(t, cfgFile, usb)
		if count != offline {
			t.Fatalf("exported %d records, want %d", count, offline)
		}

		hubDB := filepath.Join(t.TempDir(), "hub.db")
		out, err := hubdImport("-db", hubDB, "-ca", pki.CAFile, file)
		if err != nil || !strings.Contains(out, fmt.Sprintf("records 1..%d: %d in the file, %d stored, 0 duplicates", offline, offline, offline)) {
			t.Fatalf("import: %v\n%s", err, out)
		}
		// The same stick imported twice stores nothing twice.
		// (-ca may name the box CA's directory, as hubd ca init makes it.)
		out, err = hubdImport("-db", hubDB, "-ca", filepath.Dir(pki.CAFile), file)
		if err != nil || !strings.Contains(out, fmt.Sprintf("0 stored, %d duplicates", offline)) {
			t.Fatalf("second import: %v\n%s", err, out)
		}

		// Back at the hub: hub and broker up, the box reconnects, drains
		// the same records over MQTT and keeps recording.
		hub := hubtest.Start(t, b.URL(), hubtest.Options{Root: importRoot, DBPath: hubDB, Backoff: importBackoff})
		c.Hub.Broker = b.URL()
		nd, stop := runNode(t, c, online)
		total := uint64(offline + online)
		hub.WaitHolds(t, certs.ClientCN, total, 30*time.Second)
		deadline := time.Now().Add(30 * time.Second)
		for nd.Outbox.Stats().Depth != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the agent's outbox still holds %+v", nd.Outbox.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := nd.Outbox.AckedThrough(); got != total {
			t.Fatalf("agent acked through %d, want %d", got, total)
		}
		stop()

		recv, _ := hub.Received(certs.ClientCN)
		t.Logf("hub holds %d records of %s, dropped %d duplicates", recv.Count, certs.ClientCN, recv.DuplicatesDropped)
		if recv.Count != total || len(recv.Missing) != 0 {
			t.Fatalf("hub received %+v, want %d records, none missing", recv, total)
		}
		// Dropped as duplicates: the second import, and the agent's resend
		// of everything it had exported (it sent from its last ack, 0).
		if recv.DuplicatesDropped < 2*offline {
			t.Fatalf("duplicates dropped %d, want at least %d", recv.DuplicatesDropped, 2*offline)
		}
		seen := map[uint64]int{}
		for _, r := range hub.Records(t, certs.ClientCN) {
			seen[r.Seq]++
		}
		for s := uint64(1); s <= total; s++ {
			if seen[s] != 1 {
				t.Fatalf("sequence %d held %d times", s, seen[s])
			}
		}
		if uint64(len(seen)) != total {
			t.Fatalf("hub holds %d sequences, want %d", len(seen), total)
		}
	})
}

// signedExport writes an export of n records for agent with the given
// certificate through the export package, as kioskctl does.
func signedExport(t *testing.T, agent string, pair certs.Pair, n uint64) string {
	t.Helper()
	id, err := export.LoadIdentity(pair.CertFile, pair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	var buf bytes.Buffer
	w, err := export.NewWriter(&buf, export.Header{Agent: agent, ExportID: export.NewExportID(), Created: time.Now(), First: 1, Last: n, Count: n}, codec)
	if err != nil {
		t.Fatal(err)
	}
	var ents []wire.Entry
	for s := uint64(1); s <= n; s++ {
		raw, err := wire.MarshalRecord(wire.Record{Kind: "door.opened", Class: wire.ClassEvent, Time: time.Now(), Body: []byte(`{"door":"d1"}`)})
		if err != nil {
			t.Fatal(err)
		}
		ents = append(ents, wire.Entry{Seq: s, Raw: raw})
	}
	if err := w.WriteBatch(ents); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(id); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), agent+export.Ext)
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportRefusesAndImportsNothing(t *testing.T) {
	pki := certs.ForTest(t)
	good := signedExport(t, certs.ClientCN, pki.Client, 20)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name+export.Ext)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 1
	cases := []struct {
		name  string
		ca    string
		files []string
		says  string
	}{
		{"flipped byte", pki.CAFile, []string{variant("flipped", flipped)}, "checksum mismatch"},
		{"truncated", pki.CAFile, []string{variant("truncated", data[:len(data)*2/3])}, "file truncated"},
		{"not from the CA", pki.CAFile, []string{signedExport(t, certs.ClientCN, pki.ForeignClient, 5)}, "certificate not trusted"},
		{"wrong -ca", pki.OtherCAFile, []string{good}, "certificate not trusted"},
		{"CN is not the agent", pki.CAFile, []string{signedExport(t, "gate-99", pki.Client, 5)}, `signed by "box-1", the header says agent "gate-99"`},
		{"one bad among good", pki.CAFile, []string{good, variant("flipped2", flipped)}, "1 of 2 files refused; nothing imported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "hub.db")
			out, err := hubdImport(append([]string{"-db", db, "-ca", tc.ca}, tc.files...)...)
			if err == nil || !strings.Contains(out+err.Error(), tc.says) {
				t.Fatalf("err %v, output %q; want %q", err, out, tc.says)
			}
			if _, err := os.Stat(db); err == nil {
				t.Fatal("the hub store was opened for a refused import")
			}
		})
	}
	for _, args := range [][]string{{"-ca", pki.CAFile}, {good}, {"-ca", filepath.Join(t.TempDir(), "none.pem"), good}} {
		if out, err := hubdImport(args...); err == nil {
			t.Errorf("import %q succeeded: %s", args, out)
		}
	}
}

func TestImportWhileTheHubRuns(t *testing.T) {
	pki := certs.ForTest(t)
	file := signedExport(t, certs.ClientCN, pki.Client, 3)
	db := filepath.Join(t.TempDir(), "hub.db")
	s, err := hubstore.Open(db, hubstore.Options{}) // hubd serve holds its store
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = hubdImport("-db", db, "-ca", pki.CAFile, file)
	if err == nil || !strings.Contains(err.Error(), "hubd serve is running it holds the store: stop it") {
		t.Fatalf("got %v", err)
	}
	if _, ok := s.AgentState(certs.ClientCN); ok {
		t.Fatal("records reached a store held by the running hub")
	}
}
