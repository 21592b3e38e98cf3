package door

import (
	"testing"
	"time"
)

func TestDebouncer(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type edge struct {
		active bool
		at     int // ms
	}
	type change struct {
		active bool
		at     int
	}
	for _, tc := range []struct {
		name        string
		edges       []edge
		settle      int // ms; 0: do not settle at the end
		want        []change
		wantBounces uint64
		pending     bool // a burst still settling at the end
	}{
		{"clean change", []edge{{true, 0}}, 20, []change{{true, 0}}, 0, false},
		{"not yet stable", []edge{{true, 0}}, 19, nil, 0, true},
		{"bouncing change keeps the first edge's time", []edge{{true, 0}, {false, 2}, {true, 3}, {false, 5}, {true, 6}}, 26, []change{{true, 0}}, 4, false},
		{"bounce restarts the interval", []edge{{true, 0}, {false, 2}, {true, 3}}, 22, nil, 0, true},
		{"glitch back to stable", []edge{{true, 0}, {false, 5}}, 25, nil, 2, false},
		{"repeat of the stable level", []edge{{false, 0}}, 100, nil, 0, false},
		// The next edge, d after the last, settles the burst before it
		// without a timer.
		{"edge after a settled glitch", []edge{{true, 0}, {false, 5}, {true, 25}}, 0, nil, 2, true},
		{"edge after a settled change", []edge{{true, 0}, {false, 20}}, 40, []change{{true, 0}, {false, 20}}, 0, false},
		{"edge just before the settle", []edge{{true, 0}, {false, 19}, {true, 38}}, 58, []change{{true, 0}}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &debouncer{d: 20 * time.Millisecond}
			b.reset(false)
			var got []change
			var bounces uint64
			take := func(s settled) {
				bounces += s.bounces
				if s.changed {
					got = append(got, change{b.stable, int(s.at.Sub(t0) / time.Millisecond)})
				}
			}
			for _, e := range tc.edges {
				if prev, had, _, _ := b.edge(e.active, ms(e.at), ms(e.at)); had {
					take(prev)
				}
			}
			if tc.settle > 0 {
				if s, done := b.settle(ms(tc.settle)); done {
					take(s)
				}
			}
			if len(got) != len(tc.want) || bounces != tc.wantBounces || b.pending != tc.pending {
				t.Fatalf("changes %v bounces %d pending %v, want %v %d %v", got, bounces, b.pending, tc.want, tc.wantBounces, tc.pending)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("changes %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestDebouncerSettleAtClampsDue(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	b := &debouncer{d: 20 * time.Millisecond}
	// An edge stamped ahead of the clock: reported with its stamp, but
	// settled 20 ms after the clock's time.
	_, _, due, ok := b.edge(true, t0.Add(time.Second), t0)
	if !ok || !due.Equal(t0.Add(20*time.Millisecond)) {
		t.Fatalf("due %v %v", due, ok)
	}
	if s, done := b.settle(due); !done || !s.changed || !s.at.Equal(t0.Add(time.Second)) {
		t.Fatalf("settled %+v %v", s, done)
	}
}

// FuzzDebouncer checks the debouncer against a reference model over an
// alternating edge sequence: edges closer than d form one burst; a burst
// whose final level differs from the stable level is one change at its
// first edge. Settle calls at arbitrary times (a timer firing late, a
// stale timer firing early) must not change the outcome.
func FuzzDebouncer(f *testing.F) {
	f.Add([]byte{0, 5, 30, 2, 1, 25}, uint8(20))
	f.Add([]byte{1, 1, 1, 1, 19, 20, 21}, uint8(20))
	f.Add([]byte{200, 3, 3, 3, 100}, uint8(50))
	f.Fuzz(func(t *testing.T, gaps []byte, dms uint8) {
		d := time.Duration(dms%60+1) * time.Millisecond
		t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
		type change struct {
			active bool
			at     time.Time
		}
		// Edges alternate levels from inactive; gaps in ms; a gap byte
		// with the top bit set also asks for a settle call before the edge
		// at a time derived from it.
		var at []time.Time
		var settleAt []time.Time
		now := t0
		for _, g := range gaps {
			now = now.Add(time.Duration(g&0x7f) * time.Millisecond)
			at = append(at, now)
			if g&0x80 != 0 {
				settleAt = append(settleAt, now.Add(-time.Duration(g&0x0f)*time.Millisecond))
			} else {
				settleAt = append(settleAt, time.Time{})
			}
		}

		var want []change
		stable := false
		for i := 0; i < len(at); {
			j := i
			for j+1 < len(at) && at[j+1].Sub(at[j]) < d {
				j++
			}
			final := (j+1)%2 == 1 // edge k goes to active iff k is even
			if final != stable {
				stable = final
				want = append(want, change{final, at[i]})
			}
			i = j + 1
		}

		b := &debouncer{d: d}
		b.reset(false)
		var got []change
		take := func(s settled) {
			if s.changed {
				got = append(got, change{b.stable, s.at})
			}
		}
		var edges, bounces uint64
		for i, e := range at {
			if st := settleAt[i]; !st.IsZero() && !st.Before(b.last) {
				if s, done := b.settle(st); done {
					take(s)
					bounces += s.bounces
				}
			}
			prev, had, _, _ := b.edge(i%2 == 0, e, e)
			edges++
			if had {
				take(prev)
				bounces += prev.bounces
			}
		}
		if s, done := b.settle(now.Add(d)); done {
			take(s)
			bounces += s.bounces
		}
		if b.pending {
			t.Fatal("burst still pending d after the last edge")
		}
		if len(got) != len(want) {
			t.Fatalf("changes %v, want %v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("changes %v, want %v", got, want)
			}
		}
		if bounces+uint64(len(got)) != edges {
			t.Fatalf("%d edges = %d bounces + %d changes, does not add up", edges, bounces, len(got))
		}
	})
}
