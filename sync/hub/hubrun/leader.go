package hubrun

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubalert"
	"github.com/kioskedge/kioskedge/sync/hubpg"
	"github.com/kioskedge/kioskedge/sync/hubstore"
)

// followEvery is how often an instance that does not lead reloads the
// shared alert state, for its /ui/alerts, /api/alerts and metrics.
const followEvery = 5 * time.Second

// sharedAlerts runs the alert service of hub instances sharing one
// PostgreSQL database: the state is one row (hubpg.AlertState, named by
// the topic root) and only the instance that leads (hubpg.Leader, same
// name) evaluates and delivers; the others reload the leader's state
// every followEvery and show it. Every instance sees every status and
// health (direct subscriptions) but only its share of the event batches,
// so the leader evaluates the record rules (tamper, door, fire, denials)
// over its share only.
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
}

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
	s.shared = &sharedAlerts{state: st, leader: l}
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
// the alert service, which on a shared store only the leader runs.
func (s *Server) offerAlert(w hubstore.Write) {
	if s.shared != nil && !s.shared.active.Load() {
		return
	}
	s.alerts.Offer(w)
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
