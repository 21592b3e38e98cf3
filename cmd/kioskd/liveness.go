package main

import (
	"fmt"
	"time"
)

// What "hung" means for the watchdog. kioskd withholds its WATCHDOG=1
// ping, so systemd restarts it WatchdogSec later, when any of these holds
// at a ping (every WatchdogSec/2):
//
//   - the watchdog goroutine itself does not get to ping (it is stuck), or
//     the main loop (signals, reloads, status) has not ticked for
//     WatchdogSec/2;
//   - the outbox committer is stuck: a health sample handed to it (the
//     probe, appended when nothing else committed for WatchdogSec, so a
//     busy box adds no records) is still not committed after WatchdogSec/2;
//   - the uplink drain loop is stuck: connected to the broker with
//     records to send, none of its counters (records sent, acks, ack
//     timeouts, publish or source errors) moved for AckTimeout +
//     WatchdogSec — a silent hub still moves them, as the drain loop
//     resends after each ack timeout;
//   - the gate's record writer is stuck: records queued, none written,
//     dropped or failed for WatchdogSec.
//
// A hub or broker that is down, a device unplugged or a full disk is not
// "hung": those are reported as health, and a restart would not help.

// liveSample is what the watchdog looks at, gathered at each ping.
type liveSample struct {
	Now time.Time
	// MainLoopAt is the main loop's last tick (zero before the first).
	MainLoopAt time.Time
	// ProbeSince is when the pending probe Append started (zero if none).
	ProbeSince time.Time
	// Uplink: connected, records waiting (outbox depth > 0), and its
	// progress counters.
	UplinkConnected bool
	UplinkWork      bool
	UplinkProgress  [6]uint64
	// Gate (zero without one): records queued and records handled.
	GateQueued int
	GateDone   uint64
}

// liveness holds the last progress seen of each loop; check is pure given
// the samples, so it is table-tested with explicit times.
type liveness struct {
	period     time.Duration // systemd's WatchdogSec
	ackTimeout time.Duration

	uplinkSeen [6]uint64
	uplinkAt   time.Time // last uplink progress, or when it got work
	uplinkBusy bool      // connected with work at the last sample
	gateSeen   uint64
	gateAt     time.Time
}

// check returns nil when the agent is alive, else why it is hung.
func (l *liveness) check(s liveSample) error {
	if !s.MainLoopAt.IsZero() && s.Now.Sub(s.MainLoopAt) > l.period/2 {
		return fmt.Errorf("main loop stuck: no tick for %v", s.Now.Sub(s.MainLoopAt).Round(time.Millisecond))
	}
	if !s.ProbeSince.IsZero() && s.Now.Sub(s.ProbeSince) > l.period/2 {
		return fmt.Errorf("outbox committer stuck: a health sample has waited %v to be committed", s.Now.Sub(s.ProbeSince).Round(time.Millisecond))
	}
	busy := s.UplinkConnected && s.UplinkWork
	if !busy || !l.uplinkBusy || s.UplinkProgress != l.uplinkSeen {
		l.uplinkSeen, l.uplinkAt, l.uplinkBusy = s.UplinkProgress, s.Now, busy
	} else if d := s.Now.Sub(l.uplinkAt); d > l.ackTimeout+l.period {
		return fmt.Errorf("uplink drain stuck: connected with records to send and no progress for %v", d.Round(time.Millisecond))
	}
	if s.GateQueued == 0 || s.GateDone != l.gateSeen || l.gateAt.IsZero() {
		// Idle, progressing, or the first sample: the clock restarts.
		l.gateSeen, l.gateAt = s.GateDone, s.Now
	} else if d := s.Now.Sub(l.gateAt); d > l.period {
		return fmt.Errorf("gate record writer stuck: %d records queued, none written for %v", s.GateQueued, d.Round(time.Millisecond))
	}
	return nil
}
