package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// measureBoltPerRecord is the naive durable append: one bbolt Update (one
// commit: two fdatasyncs) per record, from one producer, into a fresh
// file. It stops after records updates or when limit passes, and times
// each Update.
//
// This is the only bbolt import outside the stores: the baseline must be
// bbolt itself, not the outbox.
func measureBoltPerRecord(ctx context.Context, cfg Config, val []byte, records int, limit time.Duration) (result, error) {
	dir, err := cfg.tempDir("bolt")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "baseline.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return result{}, err
	}
	defer db.Close() // the explicit Close below reports errors
	bucket := []byte("records")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		return result{}, err
	}
	key := make([]byte, 8)
	put := func(seq uint64) error {
		binary.BigEndian.PutUint64(key, seq)
		return db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, val) })
	}
	for i := range 10 { // warm-up
		if err := put(uint64(i)); err != nil {
			return result{}, err
		}
	}
	lat := make([]time.Duration, 0, records)
	start := time.Now()
	deadline := start.Add(limit)
	for i := 0; i < records && time.Now().Before(deadline); i++ {
		if err := ctx.Err(); err != nil {
			return result{}, err
		}
		t0 := time.Now()
		if err := put(uint64(100 + i)); err != nil {
			return result{}, fmt.Errorf("update: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	if err := db.Close(); err != nil {
		return result{}, err
	}
	res := result{records: len(lat), elapsed: elapsed, rate: float64(len(lat)) / elapsed.Seconds(), lat: lat}
	res.p50, res.p99 = percentiles(lat)
	return res, nil
}
