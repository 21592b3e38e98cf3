package door

import "time"

// debouncer is the pure debounce core of one input (firmware-specs/door.md
// §4): a change of level becomes stable once the line has held the new
// level for d since its last edge; it is reported with the time of the
// first edge that left the previous stable level. A burst of edges that
// ends back at the stable level is a bounce and reports nothing.
//
// It is a function of the edges' times: an edge coming d or more after
// the previous one first settles the burst before it, so the outcome does
// not depend on when the settle timer's goroutine runs.
type debouncer struct {
	d       time.Duration
	stable  bool      // the debounced level (true: active)
	raw     bool      // the level after the latest edge
	pending bool      // a burst of edges is settling
	start   time.Time // the burst's first edge
	last    time.Time // the burst's latest edge, on the settle clock
	edges   uint64    // edges in the burst
}

// settled is the outcome of a burst.
type settled struct {
	changed bool      // the stable level changed (to the debouncer's stable)
	at      time.Time // the burst's first edge, when changed
	bounces uint64    // edges filtered out
}

// edge feeds one edge of the line, to level active, at time at; settleAt
// is the time the debounce interval is measured from (at, or the clock's
// time if at lies ahead of it). If the edge comes after the pending burst
// had settled, that burst's outcome is returned first (prev, with
// hadPrev). due is when the level will be stable if no other edge comes;
// armed is false when the edge starts nothing (a repeat of the stable
// level with no burst in progress).
func (b *debouncer) edge(active bool, at, settleAt time.Time) (prev settled, hadPrev bool, due time.Time, armed bool) {
	if b.pending {
		prev, hadPrev = b.settle(settleAt)
	}
	if !b.pending {
		if active == b.stable {
			return prev, hadPrev, time.Time{}, false
		}
		b.pending, b.start, b.edges = true, at, 0
	}
	b.raw = active
	b.last = settleAt
	b.edges++
	return prev, hadPrev, b.due(), true
}

// settle decides the pending burst at time now: done is false while no
// burst is pending or it is still settling (then call again at due).
func (b *debouncer) settle(now time.Time) (s settled, done bool) {
	if !b.pending || now.Before(b.due()) {
		return settled{}, false
	}
	b.pending = false
	if b.raw == b.stable {
		return settled{bounces: b.edges}, true
	}
	b.stable = b.raw
	return settled{changed: true, at: b.start, bounces: b.edges - 1}, true
}

// due returns when the pending burst settles.
func (b *debouncer) due() time.Time { return b.last.Add(b.d) }

// reset sets the stable level without an edge (the initial read) and
// drops any burst.
func (b *debouncer) reset(active bool) {
	*b = debouncer{d: b.d, stable: active, raw: active}
}
