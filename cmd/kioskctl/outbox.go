package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/sync/export"
	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Export batch bounds: those of the uplink's defaults, so every batch is
// one the hub would take over MQTT.
const (
	exportBatchRecords = 1000
	exportBatchBytes   = 1 << 20
)

type exportOpts struct {
	out  string
	from uint64
}

func outboxFlagSet(o *exportOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("kioskctl outbox export", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "", "file to write (e.g. /media/usb/gate-17-2026-11-28.keo), or a directory to write AGENT-DATE.keo in (required)")
	fs.Uint64Var(&o.from, "from", 0, "export records from this sequence on (default: every unacked record)")
	return fs
}

func outboxFlags() *flag.FlagSet { return outboxFlagSet(&exportOpts{}) }

// exportResult is what outbox export reports (--json).
type exportResult struct {
	File   string `json:"file"` // "" when there was nothing to export
	Agent  string `json:"agent"`
	First  uint64 `json:"first"`
	Last   uint64 `json:"last"`
	Count  uint64 `json:"count"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256,omitempty"`
}

// runOutbox runs "outbox export": it writes the outbox's unacked records
// to a signed export file for hubd import (firmware-specs/outbox-export.md).
// kioskd must be stopped. Nothing is deleted from the outbox. Exit 0 when
// written (or nothing to export), 2 for bad usage, 3 when it could not.
func runOutbox(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] != "export" {
		return fail(e, "outbox", exitUsage, "want: kioskctl outbox export --out FILE|DIR [--from SEQ]")
	}
	const cmd = "outbox export"
	var o exportOpts
	fs := outboxFlagSet(&o)
	if code, ok := parseFlags(e, fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(e, cmd, exitUsage, "unexpected arguments %q", fs.Args())
	}
	if o.out == "" {
		return fail(e, cmd, exitUsage, "--out is required: the file (or USB stick directory) to write")
	}
	c, err := config.Load(e.Config)
	if err != nil {
		return fail(e, cmd, exitUnusable, "%v (check it with kioskctl config check %s)", err, e.Config)
	}
	if c.Hub.CertFile == "" || c.Hub.KeyFile == "" {
		return fail(e, cmd, exitUnusable, "the export is signed with the box's certificate, but hub.cert_file and hub.key_file are not set in %s; provision the box first", e.Config)
	}
	id, err := export.LoadIdentity(c.Hub.CertFile, c.Hub.KeyFile)
	if err != nil {
		return fail(e, cmd, exitUnusable, "%v", err)
	}
	if cn := id.Leaf.Subject.CommonName; cn != c.Agent.ID {
		return fail(e, cmd, exitUnusable, "the certificate %s is for %q but agent.id is %q: the hub would refuse the file; fix the config or the certificate", c.Hub.CertFile, cn, c.Agent.ID)
	}

	obPath := outboxPath(c)
	snap, err := outbox.OpenSnapshot(obPath, 0)
	switch {
	case errors.Is(err, outbox.ErrLocked):
		return fail(e, cmd, exitUnusable, "kioskd is running: stop it (systemctl stop kioskd) or wait for it to sync")
	case errors.Is(err, iofs.ErrNotExist):
		return fail(e, cmd, exitUnusable, "no outbox at %s: nothing was recorded yet, or agent.data_dir is wrong", obPath)
	case errors.Is(err, outbox.ErrCorrupt):
		return fail(e, cmd, exitUnusable, "the outbox %s is damaged (%v): start kioskd once so it salvages the file, stop it, and export again", obPath, err)
	case err != nil:
		return fail(e, cmd, exitUnusable, "%v", err)
	}
	defer snap.Close() // read-only; nothing to flush

	after := uint64(0)
	if o.from > 0 {
		after = o.from - 1
	}
	count, last, err := snap.Count(after)
	if err != nil {
		return fail(e, cmd, exitUnusable, "reading the outbox: %v", err)
	}
	res := exportResult{Agent: c.Agent.ID}
	if count == 0 {
		if e.JSON {
			return printJSON(e, res)
		}
		fmt.Fprintf(e.Stdout, "nothing to export: the outbox holds no unacked records after sequence %d\n", max(after, snap.AckedThrough()))
		return exitOK
	}
	now := time.Now()
	h := export.Header{
		Agent: c.Agent.ID, ExportID: export.NewExportID(), Created: now,
		First: max(after, snap.AckedThrough()) + 1, Last: last, Count: count, AckedThrough: snap.AckedThrough(),
	}
	path, err := exportPath(o.out, c.Agent.ID, now)
	if err != nil {
		return fail(e, cmd, exitUnusable, "%v", err)
	}
	size, digest, err := writeExport(ctx, e, snap, path, h, id, after)
	if err != nil {
		return fail(e, cmd, exitUnusable, "%v", err)
	}
	res.File, res.First, res.Last, res.Count, res.Bytes, res.SHA256 = path, h.First, h.Last, h.Count, size, digest
	if e.JSON {
		return printJSON(e, res)
	}
	table(e, []string{"FILE", "AGENT", "FIRST", "LAST", "RECORDS", "BYTES"}, [][]string{{
		path, res.Agent, strconv.FormatUint(res.First, 10), strconv.FormatUint(res.Last, 10),
		strconv.FormatUint(res.Count, 10), strconv.FormatInt(res.Bytes, 10),
	}})
	fmt.Fprintln(e.Stdout, "The records stay in the outbox until the hub acknowledges them over MQTT; start kioskd again (systemctl start kioskd).")
	fmt.Fprintln(e.Stdout, "At the hub: hubd import -db HUB.db -ca CA.pem", path)
	return exitOK
}

// exportPath returns out, or AGENT-DATE.keo inside out when out is a
// directory. It refuses to overwrite a file.
func exportPath(out, agent string, now time.Time) (string, error) {
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		out = filepath.Join(out, agent+"-"+now.UTC().Format("2006-01-02T150405Z")+export.Ext)
	}
	if _, err := os.Stat(out); err == nil {
		return "", fmt.Errorf("%s exists: remove it or choose another name", out)
	} else if !errors.Is(err, iofs.ErrNotExist) {
		return "", err
	}
	return out, nil
}

// writeExport writes the file as path + ".partial", fsyncs it and renames
// it into place, so a stick pulled out early never holds a file that
// looks complete. Progress goes to stderr for big exports.
func writeExport(ctx context.Context, e *env, snap *outbox.Snapshot, path string, h export.Header, id export.Identity, after uint64) (n int64, digest string, err error) {
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		return 0, "", err
	}
	defer codec.Close()
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("%w (is the stick mounted and writable? a stale %s can be removed)", err, filepath.Base(tmp))
	}
	defer func() {
		if err != nil {
			// The error being returned is what matters; the partial file
			// is useless either way.
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := export.NewWriter(bw, h, codec)
	if err != nil {
		return 0, "", err
	}
	var done uint64
	step := h.Count / 10
	report := h.Count >= 10_000
	for next := step; ; {
		if err := ctx.Err(); err != nil {
			return 0, "", fmt.Errorf("interrupted: %w", err)
		}
		ents, err := snap.Read(after, exportBatchRecords, exportBatchBytes)
		if err != nil {
			return 0, "", fmt.Errorf("reading the outbox: %w", err)
		}
		if len(ents) == 0 {
			break
		}
		if err := w.WriteBatch(ents); err != nil {
			return 0, "", fmt.Errorf("writing %s: %w", tmp, err)
		}
		after = ents[len(ents)-1].Seq
		done += uint64(len(ents))
		if report && done >= next {
			fmt.Fprintf(e.Stderr, "kioskctl outbox export: %d of %d records (%d%%)\n", done, h.Count, done*100/h.Count)
			next += step
		}
	}
	if err := w.Finish(id); err != nil {
		return 0, "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := bw.Flush(); err != nil {
		return 0, "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return 0, "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, "", err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		// Best effort: some stick file systems (vfat) refuse a directory
		// fsync; the file itself is synced.
		_ = d.Sync()
		_ = d.Close()
	}
	sum, err := fileDigest(path)
	if err != nil {
		return 0, "", err
	}
	return w.Bytes(), sum, nil
}

// outboxPath is the outbox file in c's data directory, where
// cmd/internal/node opens it.
func outboxPath(c config.Config) string { return filepath.Join(c.Agent.DataDir, "outbox.db") }

// fileDigest returns the file's checksum field (its last 32 bytes), hex.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close() // read-only
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := f.ReadAt(b, fi.Size()-32); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", b), nil
}
