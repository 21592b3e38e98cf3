package gate

import (
	"context"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/access"
	"github.com/kioskedge/kioskedge/sync/wire"
)

type discardOutbox struct{}

func (discardOutbox) Append(context.Context, wire.Record) (uint64, error) { return 1, nil }

type nopDoor struct{}

func (nopDoor) Release() error { return nil }
func (nopDoor) Secure() error  { return nil }
func (nopDoor) Halt() error    { return nil }

// BenchmarkPresentGrant measures a granted presentation through the gate
// (decide, release, queue the records; the writer runs concurrently into
// a discarding outbox) next to its baseline, Engine.Decide alone, with an
// in-memory allowlist and the system clock. Within one 5 s pulse every
// grant after the first extends the pulse, as at a busy gate.
func BenchmarkPresentGrant(b *testing.B) {
	c := card("1-100", time.Now())
	newEngine := func(b *testing.B) *access.Engine {
		al := mapAllowlist{hasher.Hash(c): {DoorGroups: []string{"g"}}}
		eng, err := access.New(access.Config{Hasher: hasher, Allowlist: al, Doors: []access.Door{{ID: "d1", Groups: []string{"g"}}}})
		if err != nil {
			b.Fatal(err)
		}
		return eng
	}
	b.Run("baseline=Engine.Decide", func(b *testing.B) {
		eng := newEngine(b)
		b.ReportAllocs()
		for b.Loop() {
			if !eng.Decide("d1", c, true, time.Now()).Granted {
				b.Fatal("denied")
			}
		}
	})
	b.Run("Gate.Present", func(b *testing.B) {
		g, err := New(Config{Engine: newEngine(b), Outbox: discardOutbox{}, QueueSize: 1 << 16,
			Doors: []DoorConfig{{ID: "d1", Door: nopDoor{}, HasContact: true}}})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		b.ReportAllocs()
		for b.Loop() {
			if !g.Present("d1", "", c, true).Granted {
				b.Fatal("denied")
			}
		}
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if st := g.Stats(); st.Dropped != 0 {
			b.Logf("%d records dropped (writer behind)", st.Dropped)
		}
	})
	// The caller's share alone: the queue is emptied outside the timer, so
	// the records' encoding and the writer's allocations are not counted.
	b.Run("Gate.Present/caller_only", func(b *testing.B) {
		g, err := New(Config{Engine: newEngine(b), Outbox: discardOutbox{}, QueueSize: 1 << 12,
			Doors: []DoorConfig{{ID: "d1", Door: nopDoor{}, HasContact: true}}})
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if !g.Present("d1", "", c, true).Granted {
				b.Fatal("denied")
			}
			if i++; i%1024 == 0 {
				b.StopTimer()
				for {
					if _, ok := g.q.peek(); !ok {
						break
					}
					g.q.pop(true)
				}
				b.StartTimer()
			}
		}
		if st := g.Stats(); st.Dropped != 0 {
			b.Fatalf("%d records dropped", st.Dropped)
		}
	})
}
