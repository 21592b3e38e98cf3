package outbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// AlarmBody is the JSON body of the wire.KindOutboxAlarm record appended
// after a damaged file was replaced.
type AlarmBody struct {
	Reason   string `json:"reason"`   // "corrupt"
	Error    string `json:"error"`    // what was wrong
	MovedTo  string `json:"moved_to"` // the quarantined file
	Salvaged uint64 `json:"salvaged"` // records copied into the fresh file
	Method   string `json:"method"`   // "bbolt", "page_scan" or "none"
	NextSeq  uint64 `json:"next_seq"` // first sequence of the fresh file after salvage
}

const salvageBatch = 10_000

type salvaged struct {
	seq uint64
	val []byte
}

// replaceCorrupt replaces the damaged file at Path. It builds the new file
// as "<Path>.salvage" (the salvaged records, then the alarm record), and
// only when that is committed renames the damaged file to moved and the
// new one to Path, fsyncing the directory after each rename. A crash before
// the first rename leaves the damaged file in place, and the next Open does
// it all again; a crash between the renames leaves no file at Path and a
// complete "<Path>.salvage", which Open installs (settleSideFiles). On
// error the returned db, if not nil, must be closed by the caller.
func (o *Outbox) replaceCorrupt(db *bolt.DB, cause error) (*bolt.DB, *state, error) {
	path, tmp := o.opts.Path, o.opts.Path+".salvage"
	if db != nil {
		if err := closeQuietly(db); err != nil {
			o.log.Warn("closing the damaged file", "err", err)
		}
	}
	moved := path + ".corrupt-" + o.opts.Now().UTC().Format("20060102T150405.000000000Z")
	o.log.Error("outbox file damaged; salvaging into a fresh one", "err", cause, "moved_to", moved)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("outbox: fresh file after damage: %w", err)
	}
	ndb, err := openBolt(tmp, false)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: fresh file after damage: %w", err)
	}
	st := newState()
	st.nextSeq = o.reserved + 1
	if err := initFile(ndb, st); err != nil {
		return ndb, nil, fmt.Errorf("outbox: fresh file after damage: %w", err)
	}
	cur := st
	var n uint64
	put := func(batch []salvaged) error {
		var next *state
		err := ndb.Update(func(tx *bolt.Tx) error {
			w := newWriter(tx, cur)
			next = w.st
			for _, e := range batch {
				bk, err := w.bucket(segOf(e.seq), true)
				if err != nil {
					return err
				}
				if bk.Get(seqKey(e.seq)) != nil {
					continue // the page scan can see old copies of a page
				}
				if err := w.putAt(e.seq, e.val, classOf(e.val)); err != nil {
					return err
				}
				n++
			}
			return w.finish()
		})
		if err == nil {
			cur = next
		}
		return err
	}
	old, method, serr := salvage(path, put)
	if serr != nil {
		o.log.Error("salvage stopped early", "err", serr, "salvaged", n)
	}
	// Sequences: above the reservation, the old meta and everything salvaged.
	next := cur.clone()
	if old != nil {
		next.nextSeq = max(next.nextSeq, old.nextSeq)
		next.evicted, next.gapRecords, next.corruptions = old.evicted, old.gapRecords, old.corruptions
		if old.acked < next.nextSeq {
			next.acked = max(next.acked, old.acked)
		}
	}
	next.corruptions++
	body, err := json.Marshal(AlarmBody{Reason: "corrupt", Error: cause.Error(), MovedTo: moved,
		Salvaged: n, Method: method, NextSeq: next.nextSeq})
	if err != nil {
		return ndb, nil, fmt.Errorf("outbox: alarm body: %w", err)
	}
	v, err := wire.MarshalRecord(wire.Record{Kind: wire.KindOutboxAlarm, Class: wire.ClassCritical, Time: o.opts.Now(), Body: body})
	if err != nil {
		return ndb, nil, fmt.Errorf("outbox: alarm record: %w", err)
	}
	if err := o.reserve(next.nextSeq); err != nil {
		return ndb, nil, err
	}
	var final *state
	err = ndb.Update(func(tx *bolt.Tx) error {
		w := newWriter(tx, next)
		final = w.st
		if err := w.put(v); err != nil {
			return err
		}
		return w.finish()
	})
	if err != nil {
		return ndb, nil, fmt.Errorf("outbox: alarm record: %w", err)
	}
	crashPoint("salvage-written")
	if err := os.Rename(path, moved); err != nil {
		return ndb, nil, fmt.Errorf("outbox: quarantine damaged file: %w (damage: %w)", err, cause)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return ndb, nil, fmt.Errorf("outbox: quarantine damaged file: %w", err)
	}
	crashPoint("quarantine-renamed")
	if err := os.Rename(tmp, path); err != nil {
		return ndb, nil, fmt.Errorf("outbox: install fresh file after damage: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return ndb, nil, fmt.Errorf("outbox: install fresh file after damage: %w", err)
	}
	o.log.Error("outbox alarm raised", "salvaged", n, "method", method, "next_seq", final.nextSeq)
	return ndb, final, nil
}

// closeQuietly closes a damaged db, converting a panic into an error.
func closeQuietly(db *bolt.DB) (err error) {
	defer catchCorrupt(&err)
	defer withPanicOnFault()()
	return db.Close()
}

// salvage reads what it can from the quarantined file and hands it to put
// in batches of increasing sequences (per segment). It first tries bbolt
// read-only; if bbolt cannot open the file at all it scans raw pages. It
// returns the old state if readable.
func salvage(path string, put func([]salvaged) error) (*state, string, error) {
	db, err := openBolt(path, true)
	if err != nil {
		return nil, "page_scan", scanPages(path, 0, put)
	}
	defer func() {
		if cerr := closeQuietly(db); cerr != nil && err == nil {
			err = cerr
		}
	}()
	var old *state
	var names [][]byte
	err = safeView(db, func(tx *bolt.Tx) error {
		if m := tx.Bucket(metaBucket); m != nil {
			old, _ = decodeState(m.Get(stateKey)) // damaged meta: salvage everything
		}
		c := tx.Cursor()
		for k, _ := c.Seek([]byte{'s'}); k != nil && isSegName(k); k, _ = c.Next() {
			names = append(names, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		// The root itself is unreadable: fall back to the page scan.
		return old, "page_scan", scanPages(path, 0, put)
	}
	var acked uint64
	if old != nil {
		acked = old.acked
	}
	var firstErr error
	for _, name := range names {
		var batch []salvaged
		err := safeView(db, func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				return fmt.Errorf("%w: bucket %x unreadable", ErrCorrupt, name)
			}
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if e, ok := salvageable(k, v); ok && e.seq > acked {
					batch = append(batch, e)
				}
			}
			return nil
		})
		// Whatever was read before a fault is kept.
		if perr := put(batch); perr != nil {
			return old, "bbolt", perr
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		// A segment faulted part way: the pages past the fault may still
		// hold records, which only the page scan can reach.
		if err := scanPages(path, acked, put); err != nil {
			return old, "bbolt+page_scan", errors.Join(firstErr, err)
		}
		return old, "bbolt+page_scan", nil
	}
	return old, "bbolt", nil
}

// salvageable copies a key/value pair if it is a well-formed record.
func salvageable(k, v []byte) (salvaged, bool) {
	if len(k) != 8 || v == nil {
		return salvaged{}, false
	}
	seq := binary.BigEndian.Uint64(k)
	if seq == 0 {
		return salvaged{}, false
	}
	if _, err := wire.UnmarshalRecord(seq, "", v); err != nil {
		return salvaged{}, false
	}
	return salvaged{seq: seq, val: append([]byte(nil), v...)}, true
}

// bbolt page layout, read by the page scan (see bbolt internal/common).
const (
	pageHeaderSize = 16
	leafElemSize   = 16
	leafPageFlag   = 0x02
	bucketLeafFlag = 0x01
	bucketHdrSize  = 16
)

// scanPages reads the file page by page without bbolt, and salvages every
// leaf element that looks like a record (8-byte key, value that decodes as
// a wire record). Inline segment buckets are followed. Old copies of pages
// may yield records already acked or evicted: they are sent again and the
// hub drops duplicates.
//
// Only records above `after` are kept.
func scanPages(path string, after uint64, put func([]salvaged) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ps := os.Getpagesize()
	buf := make([]byte, ps)
	var batch []salvaged
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		if n < pageHeaderSize {
			break
		}
		page := buf[:n]
		pages := 1
		if page[8]&leafPageFlag != 0 && binary.LittleEndian.Uint16(page[8:]) == leafPageFlag {
			over := int(binary.LittleEndian.Uint32(page[12:]))
			if over > 0 && over < 1<<16 {
				big := make([]byte, (over+1)*ps)
				if m, _ := f.ReadAt(big, off); m > 0 { // a short read just yields fewer records
					page = big[:m]
					pages = over + 1
				}
			}
			batch = scanLeaf(page, batch, 0, after)
		}
		if len(batch) >= salvageBatch {
			if err := put(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		off += int64(pages * ps)
		if err == io.EOF {
			break
		}
	}
	return put(batch)
}

// scanLeaf appends the records found in one leaf page image.
func scanLeaf(page []byte, out []salvaged, depth int, after uint64) []salvaged {
	if len(page) < pageHeaderSize || depth > 1 {
		return out
	}
	count := int(binary.LittleEndian.Uint16(page[10:]))
	for i := 0; i < count; i++ {
		eo := pageHeaderSize + i*leafElemSize
		if eo+leafElemSize > len(page) {
			break
		}
		flags := binary.LittleEndian.Uint32(page[eo:])
		pos := int(binary.LittleEndian.Uint32(page[eo+4:]))
		ks := int(binary.LittleEndian.Uint32(page[eo+8:]))
		vs := int(binary.LittleEndian.Uint32(page[eo+12:]))
		start := eo + pos
		if pos < 0 || ks < 0 || vs < 0 || start < 0 || start+ks+vs > len(page) || start+ks+vs < start {
			continue
		}
		k, v := page[start:start+ks], page[start+ks:start+ks+vs]
		if flags&bucketLeafFlag != 0 {
			// An inline bucket: header with root page 0, then a page image.
			if isSegName(k) && len(v) > bucketHdrSize && binary.LittleEndian.Uint64(v) == 0 {
				out = scanLeaf(v[bucketHdrSize:], out, depth+1, after)
			}
			continue
		}
		if e, ok := salvageable(k, v); ok && e.seq > after {
			out = append(out, e)
		}
	}
	return out
}

// settleSideFiles finishes or discards what a crash left: a complete
// "<Path>.salvage" when no file is at Path (a crash between the renames of
// replaceCorrupt) is installed; otherwise a "<Path>.salvage" or
// "<Path>.fresh" (an unfinished reclaim) is stale and removed.
func settleSideFiles(path string) error {
	salvage := path + ".salvage"
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(salvage, path); err == nil {
			if err := syncDir(filepath.Dir(path)); err != nil {
				return fmt.Errorf("outbox: install salvaged file: %w", err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("outbox: install salvaged file: %w", err)
		}
	}
	for _, stale := range []string{salvage, path + ".fresh"} {
		if err := os.Remove(stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("outbox: remove stale %s: %w", stale, err)
		}
	}
	return nil
}
