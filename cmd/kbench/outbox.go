package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// recordSize is the stored size of every benchmark record, as in the issue
// and MEASUREMENTS.md.
const recordSize = 300

// outboxSizes bounds one outbox measurement: it stops at whichever of
// records or limit comes first.
type outboxSizes struct {
	records64, records256 int           // outbox appends per run
	boltRecords           int           // one-Update-per-record baseline
	diskRecords           int           // raw write+fdatasync baseline
	limit                 time.Duration // per measurement
}

func sizesFor(cfg Config) outboxSizes {
	if cfg.Quick {
		return outboxSizes{records64: 100_000, records256: 200_000, boltRecords: 2_000, diskRecords: 300_000, limit: 5 * time.Second}
	}
	return outboxSizes{records64: 300_000, records256: 600_000, boltRecords: 5_000, diskRecords: 1_000_000, limit: 15 * time.Second}
}

// outboxSuite measures durable appends (issue 2 part 8, "outbox"):
//
//   - outbox/append: records/s with 64 concurrent producers; baseline one
//     bbolt Update (one commit) per record, from one producer (bbolt
//     serialises writers, so more producers do not raise it), measured in
//     two halves before and after the outbox runs.
//   - outbox/append_256: the same with 256 producers; same baseline.
//   - outbox/append_p50_ms, outbox/append_p99_ms: Append latency with 64
//     producers; baseline the latency of one bbolt Update per record alone.
//   - outbox/append_vs_disk: the 64-producer rate against one write and one
//     fdatasync per 1000 records appended to a plain file, the disk's
//     physical reference.
func outboxSuite(ctx context.Context, cfg Config) ([]Row, error) {
	return outboxRows(ctx, cfg, sizesFor(cfg))
}

// outboxRows runs the outbox suite with the given sizes.
func outboxRows(ctx context.Context, cfg Config, sz outboxSizes) ([]Row, error) {
	val, rec, err := benchRecord()
	if err != nil {
		return nil, err
	}

	// The one-Update-per-record baseline runs in two halves, before and
	// after the outbox runs, so a load change on the machine during the run
	// weighs on both sides of the ratio.
	half := max(sz.boltRecords/2, 1)
	cfg.progressf("outbox: baseline, one bbolt Update per record (%d records, first half)", half)
	boltA, err := measureBoltPerRecord(ctx, cfg, val, half, sz.limit/2)
	if err != nil {
		return nil, fmt.Errorf("bbolt baseline: %w", err)
	}
	cfg.progressf("outbox: baseline, raw write + fdatasync per 1000 records (%d records)", sz.diskRecords)
	disk, err := measureRawDisk(ctx, cfg, val, sz.diskRecords, 1000, sz.limit)
	if err != nil {
		return nil, fmt.Errorf("disk baseline: %w", err)
	}
	cfg.progressf("outbox: 64 producers (%d records)", sz.records64)
	o64, err := measureOutbox(ctx, cfg, rec, 64, sz.records64, sz.limit)
	if err != nil {
		return nil, fmt.Errorf("64 producers: %w", err)
	}
	cfg.progressf("outbox: 256 producers (%d records)", sz.records256)
	o256, err := measureOutbox(ctx, cfg, rec, 256, sz.records256, sz.limit)
	if err != nil {
		return nil, fmt.Errorf("256 producers: %w", err)
	}
	cfg.progressf("outbox: baseline, one bbolt Update per record (%d records, second half)", half)
	boltB, err := measureBoltPerRecord(ctx, cfg, val, half, sz.limit/2)
	if err != nil {
		return nil, fmt.Errorf("bbolt baseline: %w", err)
	}
	bolt := combine(boltA, boltB)

	const s = "outbox"
	perRecord := "one bbolt Update per record"
	return []Row{
		newRow(s, "append", o64.rate, "records/s", bolt.rate, perRecord),
		newRow(s, "append_256", o256.rate, "records/s", bolt.rate, perRecord),
		newRow(s, "append_p50_ms", ms(o64.p50), "ms", ms(bolt.p50), perRecord+", alone"),
		newRow(s, "append_p99_ms", ms(o64.p99), "ms", ms(bolt.p99), perRecord+", alone"),
		newRow(s, "append_vs_disk", o64.rate, "records/s", disk.rate, "raw write + fdatasync per 1000 records"),
	}, nil
}

// result is one measurement: a rate and, where measured, latencies.
type result struct {
	records  int
	elapsed  time.Duration
	rate     float64 // records per second
	p50, p99 time.Duration
	lat      []time.Duration // every sample, where kept
}

// combine merges two runs of the same measurement.
func combine(a, b result) result {
	r := result{records: a.records + b.records, elapsed: a.elapsed + b.elapsed, lat: slices.Concat(a.lat, b.lat)}
	r.rate = float64(r.records) / r.elapsed.Seconds()
	r.p50, r.p99 = percentiles(r.lat)
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchRecord returns the stored form of an access record that is
// exactly recordSize bytes, and the record.
func benchRecord() ([]byte, wire.Record, error) {
	r := wire.Record{
		Kind:  wire.KindAccess,
		Class: wire.ClassCritical,
		Time:  time.Date(2025, 3, 14, 8, 30, 0, 0, time.FixedZone("ART", -3*3600)),
	}
	const prefix = `{"door":"gate-north-1","reader":"wiegand-0","credential":"****5821","decision":"granted","rule":"allowlist","resident":"r-000123","pad":"`
	var (
		b   []byte
		err error
	)
	// The body length is a uvarint, so padding can shift the total by a
	// byte; a few rounds settle it.
	for pad, i := 0, 0; i < 8; i++ {
		r.Body = []byte(prefix + strings.Repeat("x", pad) + `"}`)
		if b, err = wire.MarshalRecord(r); err != nil {
			return nil, r, fmt.Errorf("benchmark record: %w", err)
		}
		if len(b) == recordSize {
			return b, r, nil
		}
		pad = max(pad+recordSize-len(b), 0)
	}
	return nil, r, fmt.Errorf("benchmark record is %d bytes, want %d", len(b), recordSize)
}

// measureOutbox opens a fresh outbox and has producers goroutines append
// rec until records appends returned or limit passed; every Append is
// timed. A warm-up of one record per producer runs first.
func measureOutbox(ctx context.Context, cfg Config, rec wire.Record, producers, records int, limit time.Duration) (result, error) {
	dir, err := cfg.tempDir("outbox")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ob, err := outbox.Open(outbox.Options{Path: filepath.Join(dir, "outbox.db")})
	if err != nil {
		return result{}, err
	}
	closeOnce := sync.OnceValue(ob.Close)
	defer closeOnce() // covers early returns; the explicit call below reports its error

	if _, err := runProducers(ctx, producers, producers, time.Minute, func(ctx context.Context) error {
		_, err := ob.Append(ctx, rec)
		return err
	}, nil); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}

	lat := make([][]time.Duration, producers)
	start := time.Now()
	n, err := runProducers(ctx, producers, records, limit, func(ctx context.Context) error {
		_, err := ob.Append(ctx, rec)
		return err
	}, lat)
	elapsed := time.Since(start)
	if err != nil {
		return result{}, err
	}
	if err := closeOnce(); err != nil {
		return result{}, fmt.Errorf("close outbox: %w", err)
	}
	res := result{records: n, elapsed: elapsed, rate: float64(n) / elapsed.Seconds()}
	res.p50, res.p99 = percentiles(slices.Concat(lat...))
	return res, nil
}

// runProducers runs op from producers goroutines until total calls were
// made, limit passed or ctx ended, and returns the number of successful
// calls. With lat non-nil, producer i appends each call's duration to
// lat[i]. The first op error stops every producer and is returned.
func runProducers(ctx context.Context, producers, total int, limit time.Duration, op func(context.Context) error, lat [][]time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var (
		claimed, done atomic.Int64
		wg            sync.WaitGroup
		errOnce       sync.Once
		firstErr      error
	)
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for claimed.Add(1) <= int64(total) && ctx.Err() == nil {
				t0 := time.Now()
				if err := op(ctx); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				if lat != nil {
					lat[i] = append(lat[i], time.Since(t0))
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return int(done.Load()), firstErr
	}
	// The time limit is normal; the caller's ctx ending is not.
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return int(done.Load()), err
	}
	return int(done.Load()), nil
}

// percentiles returns the 50th and 99th percentiles (nearest rank).
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.5) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return at(0.50), at(0.99)
}

// measureRawDisk appends records of val to a plain file, one write and one
// fdatasync per group records, until records were written or limit passed.
func measureRawDisk(ctx context.Context, cfg Config, val []byte, records, group int, limit time.Duration) (result, error) {
	dir, err := cfg.tempDir("disk")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	f, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return result{}, err
	}
	defer f.Close() // the explicit Close below reports errors
	buf := make([]byte, 0, group*len(val))
	for range group {
		buf = append(buf, val...)
	}
	// Records carry distinct sequence numbers, as a real append would.
	start := time.Now()
	deadline := start.Add(limit)
	n := 0
	for n < records && time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return result{}, err
		}
		for i := range group {
			binary.BigEndian.PutUint64(buf[i*len(val)+len(val)-8:], uint64(n+i))
		}
		if _, err := f.Write(buf); err != nil {
			return result{}, err
		}
		if err := fdatasync(f); err != nil {
			return result{}, err
		}
		n += group
	}
	elapsed := time.Since(start)
	if err := f.Close(); err != nil {
		return result{}, err
	}
	return result{records: n, elapsed: elapsed, rate: float64(n) / elapsed.Seconds()}, nil
}
