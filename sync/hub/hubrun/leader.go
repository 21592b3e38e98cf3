package hubrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubalert"
	"github.com/kioskedge/kioskedge/sync/hubpg"
	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// followEvery is how often an instance that does not lead reloads the
// shared alert state, for its /ui/alerts, /api/alerts and metrics.
const followEvery = 5 * time.Second

// sharedAlerts runs the alert service of hub instances sharing one
// PostgreSQL database: the state is one row (hubpg.AlertState, named by
// the topic root) and only the instance that leads (hubpg.Leader, same
// name) evaluates and delivers; the others reload the leader's state
// every followEvery and show it. Every instance sees every status and
// health (direct subscriptions) but only its share of the event batches:
// the others tell the leader which records they committed
// (hubpg.AlertState.NotifyRecords, PostgreSQL's NOTIFY) and the leader
// reads them from the database and evaluates them too. Ranges committed
// while no instance listens (a leader taking over) are not evaluated,
// nor are those dropped on a full queue (counted and logged).
type sharedAlerts struct {
	state  *hubpg.AlertState
	leader *hubpg.Leader
	// active is set while this instance leads and its service runs on
	// the reloaded state: only then are commits offered.
	active atomic.Bool
	// mu serialises the followers' Reload with the leader's Reload and
	// Run.
	mu      sync.Mutex
	leading bool
	// ranges queues what this instance committed while not leading, for
	// the notifier; a full queue drops (counted in rangesDropped).
	ranges        chan []hubpg.RecordRange
	rangesDropped atomic.Uint64
}

// rangeQueue bounds the commits waiting to be told to the leader.
const rangeQueue = 1024

// shareAlerts, when the store is PostgreSQL, opens the shared alert
// state and the leader election (s.shared); the alert service must then
// be built with alertState. It returns the state's open error.
func (s *Server) shareAlerts() error {
	if s.cfg.DB == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := hubpg.OpenAlertState(ctx, s.cfg.DB, s.cfg.Root)
	if err != nil {
		return fmt.Errorf("hubrun: alert state: %w", err)
	}
	l, err := hubpg.NewLeader(s.cfg.DB, hubpg.LeaderOptions{Name: s.cfg.Root, Logger: s.log.With("component", "leader")})
	if err != nil {
		_ = st.Close() // nothing written; the leader's error is the news
		return fmt.Errorf("hubrun: alert leader: %w", err)
	}
	s.shared = &sharedAlerts{state: st, leader: l, ranges: make(chan []hubpg.RecordRange, rangeQueue)}
	return nil
}

// alertState is the alert service's StateStore: the shared one on
// PostgreSQL, nil (Rules.StateFile) otherwise.
func (s *Server) alertState() hubalert.StateStore {
	if s.shared == nil {
		return nil
	}
	return s.shared.state
}

// Leader returns the alert leader election, nil unless the hub has
// alerts on a PostgreSQL store.
func (s *Server) Leader() *hubpg.Leader {
	if s.shared == nil {
		return nil
	}
	return s.shared.leader
}

// offerAlert is the hub's OnCommit with alerts: it hands the commit to
// the alert service, which on a shared store only the leader runs; an
// instance that does not lead queues the ranges of the commit's batches
// for the leader instead, without waiting.
func (s *Server) offerAlert(w hubstore.Write) {
	sh := s.shared
	if sh == nil || sh.active.Load() {
		s.alerts.Offer(w)
		return
	}
	var rs []hubpg.RecordRange
	for _, b := range w.Batches {
		if n := len(b.Entries); n > 0 {
			rs = append(rs, hubpg.RecordRange{Agent: b.Agent, First: b.Entries[0].Seq, Last: b.Entries[n-1].Seq})
		}
	}
	if len(rs) == 0 {
		return
	}
	select {
	case sh.ranges <- rs:
	default:
		if n := sh.rangesDropped.Add(1); n&(n-1) == 0 {
			s.log.Warn("record ranges for the alert leader dropped on a full queue", "dropped", n)
		}
	}
}

// notifyRanges tells the leader what this instance committed, until ctx
// ends: everything queued goes in one NotifyRecords.
func (s *Server) notifyRanges(ctx context.Context) {
	sh := s.shared
	var failures uint64
	for {
		var rs []hubpg.RecordRange
		select {
		case <-ctx.Done():
			return
		case rs = <-sh.ranges:
		}
		for more := true; more; {
			select {
			case r := <-sh.ranges:
				rs = append(rs, r...)
			default:
				more = false
			}
		}
		if err := sh.state.NotifyRecords(rs); err != nil {
			if failures++; failures&(failures-1) == 0 {
				s.log.Warn("record ranges not told to the alert leader", "failures", failures, "err", err)
			}
		}
	}
}

// errRangeEnd stops a ForEach at the end of a range.
var errRangeEnd = errors.New("hubrun: end of range")

// followRanges, on the leader, evaluates the records the other
// instances committed, until ctx ends: l (nil: listen first) delivers
// their ranges, read here from the store.
func (s *Server) followRanges(ctx context.Context, l *hubpg.RecordListener) {
	for ctx.Err() == nil {
		if l == nil {
			var err error
			if l, err = s.shared.state.Listen(ctx); err != nil {
				s.log.Warn("alert leader: not listening for other hubs' records; retrying", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
		}
		for {
			r, err := l.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("alert leader: listening for other hubs' records", "err", err)
				}
				break
			}
			b := hubstore.Ingested{Agent: r.Agent, First: r.First, Last: r.Last}
			err = s.store.ForEach(r.Agent, r.First, func(seq uint64, raw []byte) error {
				if seq > r.Last {
					return errRangeEnd
				}
				b.Entries = append(b.Entries, wire.Entry{Seq: seq, Raw: bytes.Clone(raw)})
				return nil
			})
			if err != nil && !errors.Is(err, errRangeEnd) {
				s.log.Warn("alert leader: other hubs' records not read", "agent", r.Agent, "err", err)
			}
			if len(b.Entries) > 0 {
				s.alerts.Offer(hubstore.Write{Batches: []hubstore.Ingested{b}})
			}
		}
		// Closing a failed or finished connection has nothing to report.
		_ = l.Close()
		l = nil
	}
}

// runAlerts runs the alert service until ctx ends: at once with a
// hubstore file; with PostgreSQL, only while this instance leads, after
// reloading the state the last leader saved, and following that state
// while it does not lead.
func (s *Server) runAlerts(ctx context.Context) {
	sh := s.shared
	if sh == nil {
		_ = s.alerts.Run(ctx) // nil when ctx ends
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.notifyRanges(ctx) })
	wg.Go(func() {
		for {
			sh.mu.Lock()
			if !sh.leading {
				if err := s.alerts.Reload(); err != nil {
					s.log.Warn("alert state not reloaded", "err", err)
				}
			}
			sh.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(followEvery):
			}
		}
	})
	_ = sh.leader.Run(ctx, func(ctx context.Context, term int64) { // nil when ctx ends
		sh.mu.Lock()
		sh.leading = true
		if err := sh.state.SetTerm(term); err != nil {
			// Saves still carry the term; only the claim is missing.
			s.log.Warn("alert state not claimed for the new term", "term", term, "err", err)
		}
		if err := s.alerts.Reload(); err != nil {
			// Lead on what this instance last loaded rather than not at all.
			s.log.Error("alert state not reloaded on taking the lead", "err", err)
		}
		// Listening before taking commits: a range committed elsewhere from
		// now on is evaluated (followRanges retries a failed listen).
		l, err := sh.state.Listen(ctx)
		if err != nil {
			s.log.Warn("alert leader: not listening for other hubs' records yet", "err", err)
		}
		var follow sync.WaitGroup
		defer follow.Wait()
		follow.Go(func() { s.followRanges(ctx, l) })
		sh.active.Store(true)
		sh.mu.Unlock()
		_ = s.alerts.Run(ctx)
		sh.mu.Lock()
		sh.active.Store(false)
		sh.leading = false
		sh.mu.Unlock()
	})
}

// closeShared closes the shared alert state; after the service's Close.
func (s *Server) closeShared() {
	if s.shared != nil {
		// Close only closes the connection; it has nothing to report.
		_ = s.shared.state.Close()
	}
}
