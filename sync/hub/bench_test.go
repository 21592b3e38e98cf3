package hub

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// BenchmarkIngest feeds 2000-record batches from 4 agents through the
// events handler, one goroutine as paho does, into a real store, and
// reports records/s stored and acked.
func BenchmarkIngest(b *testing.B) {
	const per, agents = 2000, 4
	st, err := hubstore.Open(filepath.Join(b.TempDir(), "hub.db"), hubstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tr := &fakeTransport{}
	h, err := New(Options{Root: root, Store: st, Transport: tr, Codec: codec})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	for {
		tr.mu.Lock()
		n := len(tr.filters)
		tr.mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	body := make([]byte, 0, 200)
	msgs := make([][]byte, b.N)
	for i := range msgs {
		a := fmt.Sprintf("agent-%d", i%agents)
		first := uint64(i/agents*per + 1)
		es := make([]wire.Entry, per)
		for j := range es {
			body = fmt.Appendf(body[:0], `{"door":"east-1","result":"granted","credential":"h:%016x","n":%d}`, uint64(j)*0x9e3779b97f4a7c15, j)
			raw, err := wire.MarshalRecord(wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical, Time: t0.Add(time.Duration(j) * time.Second), Body: body})
			if err != nil {
				b.Fatal(err)
			}
			es[j] = wire.Entry{Seq: first + uint64(j), Raw: raw}
		}
		msgs[i], _, err = codec.EncodeBatch(a, "boot", first, first+per-1, es, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i, m := range msgs {
		h.onEvents(fmt.Sprintf("%s/v1/agent-%d/events", root, i%agents), m)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	if err := h.Wait(wctx, func() bool { return h.Stats().Batches == uint64(b.N) }); err != nil {
		b.Fatal(err)
	}
	wcancel()
	el := time.Since(start)
	b.StopTimer()
	s := h.Stats()
	b.ReportMetric(float64(s.Records)/el.Seconds(), "records/s")
	b.ReportMetric(float64(s.Batches)/float64(s.Commits), "batches/commit")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
