package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kioskedge/kioskedge/sync/export"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// importFlush bounds one store transaction of an import.
const (
	importFlushRecords = 20_000
	importFlushBytes   = 16 << 20
)

// importResult is what importing one file did.
type importResult struct {
	File        string
	Agent       string
	First, Last uint64
	Count       uint64 // records in the file
	Stored      uint64 // newly stored
	Duplicates  uint64 // already held (from MQTT or an earlier import)
	AckThrough  uint64 // the agent's contiguous coverage after the import
}

// importCmd runs "hubd import -db FILE -ca CA.pem EXPORT.keo...": it
// verifies every file (firmware-specs/outbox-export.md §6) and only then
// stores the records through the same dedup as the MQTT ingest
// (hubstore.Apply): records already held are counted as duplicates and
// never stored twice. hubd serve must be stopped: it holds the store's
// file lock. It returns an error when a file is refused (nothing is
// imported then) or the store fails.
func importCmd(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "hubd.db", "path of the hub's bbolt store (hubd serve must be stopped: it holds the file)")
	caFile := fs.String("ca", "", "CA certificate(s), PEM, that issued the boxes' client certificates, or the box CA directory of hubd ca init (its ca.pem); required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("import: give one or more export files (kioskctl outbox export writes them)")
	}
	if *caFile == "" {
		return errors.New("import: -ca is required: the CA that issued the boxes' certificates (the broker's client CA)")
	}
	roots, err := importRoots(*caFile)
	if err != nil {
		return fmt.Errorf("import: -ca: %w", err)
	}
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		return err
	}
	defer codec.Close()

	// Every file is verified before the store is touched.
	files := make([]*export.File, 0, fs.NArg())
	var refused []error
	for _, p := range fs.Args() {
		f, err := export.Open(p, export.VerifyOptions{Roots: roots, Codec: codec})
		if err != nil {
			refused = append(refused, fmt.Errorf("%s: %w", p, err))
			continue
		}
		files = append(files, f)
	}
	if len(refused) > 0 {
		for _, e := range refused {
			fmt.Fprintln(stderr, "refused:", e)
		}
		return fmt.Errorf("import: %d of %d files refused; nothing imported", len(refused), fs.NArg())
	}

	if hubrun.IsPostgresURL(*db) {
		return fmt.Errorf("hubd import: -db must be a bbolt file; importing into PostgreSQL is not supported")
	}
	store, err := hubstore.Open(*db, hubstore.Options{LockTimeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("import: %w (if hubd serve is running it holds the store: stop it, import, start it again)", err)
	}
	var importErr error
	for _, f := range files {
		res, err := importFile(store, f)
		if err != nil {
			importErr = fmt.Errorf("import: %s: %w (what was stored before this error stays; importing the file again stores the rest)", f.Header.Agent, err)
			break
		}
		fmt.Fprintf(stderr, "imported %s: agent %s, records %d..%d: %d in the file, %d stored, %d duplicates; the hub holds %s contiguously through %d\n",
			res.File, res.Agent, res.First, res.Last, res.Count, res.Stored, res.Duplicates, res.Agent, res.AckThrough)
	}
	if err := store.Close(); err != nil && importErr == nil {
		importErr = fmt.Errorf("import: closing the store: %w", err)
	}
	if importErr == nil {
		fmt.Fprintln(stderr, "start hubd serve again: each box's outbox empties when it next reaches the hub (its batches arrive as duplicates and are acked)")
	}
	return importErr
}

// importFile stores f's records in transactions of bounded size.
func importFile(store *hubstore.Store, f *export.File) (importResult, error) {
	res := importResult{File: f.Path(), Agent: f.Header.Agent, First: f.Header.First, Last: f.Header.Last, Count: f.Header.Count}
	var w hubstore.Write
	n, size := 0, 0
	flush := func() error {
		if len(w.Batches) == 0 {
			return nil
		}
		r, err := store.Apply(w)
		if err != nil {
			return err
		}
		res.Stored += r.Stored
		res.Duplicates += r.Duplicates
		for _, a := range r.Acks {
			if a.Agent == res.Agent {
				res.AckThrough = a.Through
			}
		}
		w, n, size = hubstore.Write{}, 0, 0
		return nil
	}
	err := f.Batches(func(b wire.Batch) error {
		// Entries are valid only during the call; the write outlives it.
		ents := make([]wire.Entry, len(b.Entries))
		for i, e := range b.Entries {
			ents[i] = wire.Entry{Seq: e.Seq, Raw: bytes.Clone(e.Raw)}
			size += len(e.Raw)
		}
		w.Batches = append(w.Batches, hubstore.Ingested{Agent: b.Agent, First: b.First, Last: b.Last, Entries: ents})
		n += len(ents)
		if n >= importFlushRecords || size >= importFlushBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return res, err
}

// importRoots reads the CA certificates a box certificate must chain to:
// a PEM file, or a CA directory of hubd ca init (its ca.pem).
func importRoots(file string) (*x509.CertPool, error) {
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		file = filepath.Join(file, "ca.pem")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return p, nil
}
