package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/export"
	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/certs"
)

// exportBox is an agent's config file and data directory, with a client
// certificate from a test CA.
type exportBox struct {
	config, dataDir string
	pki             *certs.PKI
}

func newExportBox(t *testing.T, agent string, withCert bool) exportBox {
	t.Helper()
	dir := t.TempDir()
	b := exportBox{config: filepath.Join(dir, "kioskd.toml"), dataDir: filepath.Join(dir, "data"), pki: certs.ForTest(t)}
	cfg := fmt.Sprintf("[agent]\nid = %q\ndata_dir = %q\n[hub]\nbroker = \"tcp://127.0.0.1:1\"\nplaintext = true\nroot = \"kioskedge/test\"\n", agent, b.dataDir)
	if withCert {
		cfg += fmt.Sprintf("cert_file = %q\nkey_file = %q\n", b.pki.Client.CertFile, b.pki.Client.KeyFile)
	}
	if err := writeFile(b.config, cfg); err != nil {
		t.Fatal(err)
	}
	return b
}

// fill appends n records (concurrently, so they share commits), acks
// through ack and closes the outbox; it returns what remains unacked.
func (b exportBox) fill(t *testing.T, n int, ack uint64) []wire.Entry {
	t.Helper()
	ob, err := outbox.Open(outbox.Options{Path: filepath.Join(b.dataDir, "outbox.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	var wg sync.WaitGroup
	for p := range 16 {
		wg.Go(func() {
			for i := p; i < n; i += 16 {
				r := wire.Record{Kind: "door.opened", Class: wire.ClassEvent, Time: time.Now(), Body: fmt.Appendf(nil, `{"door":"d%d"}`, i%4)}
				if _, err := ob.Append(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if ack > 0 {
		if err := ob.Ack(ack); err != nil {
			t.Fatal(err)
		}
	}
	var all []wire.Entry
	for after := uint64(0); ; {
		ents, err := ob.Read(after, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == 0 {
			break
		}
		all = append(all, ents...)
		after = ents[len(ents)-1].Seq
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	return all
}

func caPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("no CA in", file)
	}
	return p
}

func TestOutboxExportWritesEveryUnackedRecordAndKeepsThem(t *testing.T) {
	box := newExportBox(t, certs.ClientCN, true)
	want := box.fill(t, 12_000, 500)
	usb := t.TempDir()
	code, stdout, stderr := runCtl(t, "--config", box.config, "--json", "outbox", "export", "--out", usb)
	if code != exitOK {
		t.Fatalf("code %d\n%s", code, stderr)
	}
	var res exportResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if res.Agent != certs.ClientCN || res.First != 501 || res.Last != 12_000 || res.Count != 11_500 || filepath.Dir(res.File) != usb || !strings.HasSuffix(res.File, export.Ext) {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(stderr, "of 11500 records") {
		t.Errorf("no progress on stderr for a big export: %q", stderr)
	}
	if _, err := os.Stat(res.File + ".partial"); err == nil {
		t.Error("the .partial file was left behind")
	}
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	f, err := export.Open(res.File, export.VerifyOptions{Roots: caPool(t, box.pki.CAFile), Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != res.Bytes || fmt.Sprintf("%x", f.Digest) != res.SHA256 || f.Header.AckedThrough != 500 {
		t.Fatalf("file %d bytes digest %x acked %d; result %+v", f.Size, f.Digest, f.Header.AckedThrough, res)
	}
	i := 0
	err = f.Batches(func(b wire.Batch) error {
		for _, e := range b.Entries {
			if i >= len(want) || e.Seq != want[i].Seq || !bytes.Equal(e.Raw, want[i].Raw) {
				return fmt.Errorf("record %d (seq %d) differs from the outbox's", i, e.Seq)
			}
			i++
		}
		return nil
	})
	if err != nil || i != len(want) {
		t.Fatalf("%v; %d of %d records", err, i, len(want))
	}
	// The export deletes nothing: the hub's ack over MQTT does.
	snap, err := outbox.OpenSnapshot(filepath.Join(box.dataDir, "outbox.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if n, _, err := snap.Count(0); err != nil || n != 11_500 {
		t.Fatalf("outbox holds %d records after the export (%v), want 11500", n, err)
	}
	// The same name again is refused, not overwritten.
	code, _, stderr = runCtl(t, "--config", box.config, "outbox", "export", "--out", res.File)
	if code != exitUnusable || !strings.Contains(stderr, "exists") {
		t.Fatalf("existing file: code %d %q", code, stderr)
	}
}

func TestOutboxExportFromAndHumanOutput(t *testing.T) {
	box := newExportBox(t, certs.ClientCN, true)
	box.fill(t, 30, 5)
	out := filepath.Join(t.TempDir(), "gate.keo")
	code, stdout, stderr := runCtl(t, "--config", box.config, "outbox", "export", "--out", out, "--from", "21")
	if code != exitOK {
		t.Fatalf("code %d\n%s", code, stderr)
	}
	for _, s := range []string{out, "21", "30", "10", "stay in the outbox", "hubd import"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, stdout)
		}
	}
	if stderr != "" {
		t.Errorf("stderr for a small export: %q", stderr)
	}
}

func TestOutboxExportRefusals(t *testing.T) {
	good := newExportBox(t, certs.ClientCN, true)
	good.fill(t, 3, 0)
	drained := newExportBox(t, certs.ClientCN, true)
	drained.fill(t, 3, 3)
	damaged := newExportBox(t, certs.ClientCN, true)
	if err := os.MkdirAll(damaged.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(damaged.dataDir, "outbox.db"), bytes.Repeat([]byte("not bbolt "), 800), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		config string
		args   []string
		code   int
		says   string
	}{
		{"no subcommand", good.config, nil, exitUsage, "want: kioskctl outbox export"},
		{"no --out", good.config, []string{"export"}, exitUsage, "--out is required"},
		{"stray argument", good.config, []string{"export", "--out", "x.keo", "extra"}, exitUsage, "unexpected arguments"},
		{"no certificate", newExportBox(t, certs.ClientCN, false).config, []string{"export", "--out", t.TempDir()}, exitUnusable, "hub.cert_file and hub.key_file are not set"},
		{"certificate of another box", newExportBox(t, "gate-99", true).config, []string{"export", "--out", t.TempDir()}, exitUnusable, `is for "box-1" but agent.id is "gate-99"`},
		{"no outbox", newExportBox(t, certs.ClientCN, true).config, []string{"export", "--out", t.TempDir()}, exitUnusable, "no outbox at"},
		{"missing config", filepath.Join(t.TempDir(), "none.toml"), []string{"export", "--out", t.TempDir()}, exitUnusable, "kioskctl config check"},
		{"nothing to export", drained.config, []string{"export", "--out", t.TempDir()}, exitOK, "nothing to export"},
		{"damaged outbox", damaged.config, []string{"export", "--out", t.TempDir()}, exitUnusable, "start kioskd once so it salvages the file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCtl(t, append([]string{"--config", tc.config, "outbox"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.says) {
				t.Fatalf("code %d (want %d), output %q %q; want %q", code, tc.code, stdout, stderr, tc.says)
			}
		})
	}
	// The export never writes to the outbox, not even to repair it.
	if b, err := os.ReadFile(filepath.Join(damaged.dataDir, "outbox.db")); err != nil || !bytes.Equal(b, bytes.Repeat([]byte("not bbolt "), 800)) {
		t.Fatalf("the damaged outbox was changed (%v)", err)
	}
}

func TestOutboxExportWhileKioskdRuns(t *testing.T) {
	box := newExportBox(t, certs.ClientCN, true)
	box.fill(t, 3, 0)
	// kioskd holds the file: here, an open outbox in this process.
	ob, err := outbox.Open(outbox.Options{Path: filepath.Join(box.dataDir, "outbox.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	usb := t.TempDir()
	code, _, stderr := runCtl(t, "--config", box.config, "outbox", "export", "--out", usb)
	if code != exitUnusable || !strings.Contains(stderr, "kioskd is running: stop it (systemctl stop kioskd) or wait for it to sync") {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
	if ents, _ := os.ReadDir(usb); len(ents) != 0 {
		t.Fatalf("files left on the stick: %v", ents)
	}
}
