package uplink

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBackoffDelayAfterLoss(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 2 * time.Minute, Spread: 30 * time.Second}
	for _, tc := range []struct {
		name    string
		b       Backoff
		attempt int
		r       float64
		want    time.Duration
	}{
		{"no spread is Delay", Backoff{Min: time.Second, Max: time.Minute}, 2, 1, 4 * time.Second},
		{"first retry spread", b, 0, 1, 30 * time.Second},
		{"first retry half", b, 0, 0.5, 15 * time.Second},
		{"spread is a floor", b, 4, 1, 30 * time.Second},
		{"exponential above the spread", b, 5, 1, 32 * time.Second},
		{"still capped at Max", b, 9, 1, 2 * time.Minute},
		{"spread capped at Max", Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond, Spread: 30 * time.Second}, 0, 1, 100 * time.Millisecond},
		{"spread below Min", Backoff{Min: time.Second, Max: time.Minute, Spread: time.Millisecond}, 0, 1, time.Second},
		{"zero jitter", b, 0, 0, 0},
		{"jitter clamps", b, 0, 9, 30 * time.Second},
	} {
		if got := tc.b.DelayAfterLoss(tc.attempt, tc.r); got != tc.want {
			t.Errorf("%s: DelayAfterLoss(%d, %v) = %v, want %v", tc.name, tc.attempt, tc.r, got, tc.want)
		}
	}
}

// The schedule Run follows, event by event, with the jitter fixed at 1
// (the ceiling) so every step is visible.
func TestRetriesSchedule(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 2 * time.Minute, StableAfter: time.Minute, Spread: 30 * time.Second}
	type step struct {
		lost  bool          // an established connection dropped (else a connect failed)
		upFor time.Duration // how long it had been up
		want  time.Duration
	}
	s := time.Second
	for _, tc := range []struct {
		name  string
		b     Backoff
		steps []step
	}{
		{"boot failures are not spread", b, []step{
			{want: s}, {want: 2 * s}, {want: 4 * s}}},
		{"a stable connection lost: spread, then the exponential above it", b, []step{
			{lost: true, upFor: time.Hour, want: 30 * s}, {want: 30 * s}, {want: 30 * s},
			{want: 30 * s}, {want: 30 * s}, {want: 32 * s}, {want: 64 * s}, {want: 2 * time.Minute}}},
		{"boot failures then a stable connection lost: reset, spread", b, []step{
			{want: s}, {want: 2 * s}, {lost: true, upFor: time.Minute, want: 30 * s}, {want: 30 * s}}},
		{"an unstable connection does not reset the back-off", b, []step{
			{lost: true, upFor: time.Hour, want: 30 * s}, {want: 30 * s}, {want: 30 * s}, {want: 30 * s},
			{want: 30 * s}, {lost: true, upFor: 59 * s, want: 32 * s}, {lost: true, upFor: 2 * s, want: 64 * s}}},
		{"no spread: today's schedule", Backoff{Min: s, Max: 2 * time.Minute, StableAfter: time.Minute}, []step{
			{want: s}, {lost: true, upFor: time.Hour, want: s}, {want: 2 * s}, {lost: true, upFor: s, want: 4 * s}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sch := retries{b: tc.b}
			for i, st := range tc.steps {
				var got time.Duration
				if st.lost {
					got = sch.connectionLost(st.upFor, 1)
				} else {
					got = sch.connectFailed(1)
				}
				if got != st.want {
					t.Fatalf("step %d (%+v): sleep %v, want %v", i, st, got, st.want)
				}
			}
		})
	}
}

// stormShare simulates n sessions with back-off b that lost a stable
// connection at the same instant to a broker down for outage (each
// connect attempt while it is down fails at once, the first one after it
// succeeds), with the seeded jitter of rnd. It returns the largest share
// that reconnected within any one second and the last reconnect, from the
// broker's return.
func stormShare(b Backoff, n int, outage time.Duration, rnd *rand.Rand) (peak float64, last time.Duration) {
	at := make([]time.Duration, n)
	for i := range at {
		sch := retries{b: b}
		t := sch.connectionLost(time.Hour, rnd.Float64())
		for t < outage {
			t += sch.connectFailed(rnd.Float64())
		}
		at[i] = t - outage
	}
	slices.Sort(at)
	best, j := 0, 0
	for k := range at {
		for at[k]-at[j] >= time.Second {
			j++
		}
		best = max(best, k-j+1)
	}
	return float64(best) / float64(n), at[n-1]
}

// With the agent's defaults (agent/config: backoff 1 s to 2 min, stable
// after 1 min, reconnect spread 30 s), 1,000 boxes that lost the broker
// together come back with at most 10% of them in any one second, for
// short and long outages alike, and (for outages up to half the spread)
// all within 60 s of the broker's return (a longer outage lets the
// exponential grow past the spread: up to Max); without the spread, far more.
// Seeded jitter: deterministic, no clock.
func TestReconnectSpreadSimulatedFleet(t *testing.T) {
	def := Backoff{Min: time.Second, Max: 2 * time.Minute, StableAfter: time.Minute, Spread: 30 * time.Second}
	rnd := rand.New(rand.NewPCG(7, 11))
	for _, outage := range []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute} {
		peak, last := stormShare(def, 1000, outage, rnd)
		t.Logf("outage %v: peak %.1f%% in one second, last back after %v", outage, peak*100, last.Round(time.Millisecond))
		if peak > 0.10 {
			t.Errorf("outage %v: %.1f%% of the fleet in one second, want <= 10%%", outage, peak*100)
		}
		if outage <= def.Spread/2 && last > time.Minute {
			t.Errorf("outage %v: the last box came back %v after the broker, want <= 1m", outage, last)
		}
	}
	noSpread := def
	noSpread.Spread = 0
	peak, _ := stormShare(noSpread, 1000, 5*time.Second, rnd)
	t.Logf("without the spread, outage 5s: peak %.1f%%", peak*100)
	if peak <= 0.10 {
		t.Errorf("without the spread the peak is %.1f%%: the simulation no longer shows the storm", peak*100)
	}
}
