package hubpg

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLeaderOptions is returned by NewLeader for missing or invalid
// options or an unparsable DSN.
var ErrLeaderOptions = errors.New("hubpg: invalid leader options")

// LeaderOptions configures NewLeader.
type LeaderOptions struct {
	// Name is what the instances elect a leader for: instances with the
	// same Name on one database elect one (hubrun passes the topic root);
	// required.
	Name string
	// Retry is how often a follower tries to take the lock and how often
	// the leader checks its connection; default 1 s.
	Retry time.Duration
	// After is the clock of those waits; default time.After.
	After  func(time.Duration) <-chan time.Time
	Logger *slog.Logger // nil discards
}

// LeaderStats are a Leader's counters.
type LeaderStats struct {
	Leading bool   `json:"leading"`
	Term    int64  `json:"term"`    // the term of the last election this instance won; 0 none
	Elected uint64 `json:"elected"` // elections won
	Lost    uint64 `json:"lost"`    // terms that ended because the lock connection failed
}

// Leader elects one leader among the hub instances sharing a database,
// by a PostgreSQL session advisory lock held on one dedicated connection
// (not a pool's: the lock belongs to the session). The lock is released
// when that session ends, so a leader that is SIGKILLed or loses its
// connection leaves the lock to the next instance's next try (within
// Retry once the server has ended the session).
//
// Each election bumps a term (table hub_leader, one row per Name) that
// the leader passes to what it guards: AlertState.SetTerm fences the
// shared alert state, so a leader that lost the lock without knowing yet
// cannot overwrite what a newer one saved. A leader learns of a lost
// connection at its next check: for up to Retry, two instances may both
// act as leader. Behind a pooler in transaction mode (pgbouncer) session
// locks do not work: connect to PostgreSQL itself.
type Leader struct {
	cfg  *pgx.ConnConfig
	opts LeaderOptions
	key  int64
	log  *slog.Logger

	leading atomic.Bool
	mu      sync.Mutex
	stats   LeaderStats
}

// NewLeader validates opts and parses dsn (a postgres:// URL or key=value
// string); it connects nothing, Run does. It returns ErrLeaderOptions
// for a missing Name or a DSN pgx cannot parse.
func NewLeader(dsn string, opts LeaderOptions) (*Leader, error) {
	if opts.Name == "" {
		return nil, fmt.Errorf("%w: Name is required", ErrLeaderOptions)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLeaderOptions, err)
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Leader{cfg: cfg, opts: opts, key: LockKey(opts.Name), log: opts.Logger}, nil
}

// LockKey is the advisory lock key of the leadership for name (FNV-1a of
// a fixed prefix and name), for operators looking at pg_locks.
func LockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("kioskedge/hub-leader\x00" + name))
	return int64(h.Sum64())
}

// Leading reports whether this instance leads now.
func (l *Leader) Leading() bool { return l.leading.Load() }

// Stats returns a copy of the counters.
func (l *Leader) Stats() LeaderStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stats
	st.Leading = l.leading.Load()
	return st
}

// Run campaigns until ctx ends and returns nil then. Each time this
// instance wins, Run calls lead with the new term and a context that
// ends when leadership ends: ctx ended, or the lock connection failed a
// check (counted in Stats.Lost and logged). Run waits for lead to return
// before it releases the lock or campaigns again; lead returning early
// gives the leadership up. A database that cannot be reached is retried
// every Retry, logged once per outage.
func (l *Leader) Run(ctx context.Context, lead func(ctx context.Context, term int64)) error {
	down := false
	for ctx.Err() == nil {
		err := l.session(ctx, lead)
		if ctx.Err() != nil {
			break
		}
		if err != nil && !down {
			l.log.Warn("leader election: database unreachable; retrying", "err", err)
		}
		down = err != nil
		select {
		case <-ctx.Done():
		case <-l.opts.After(l.opts.Retry):
		}
	}
	return nil
}

// session connects once, campaigns on that connection and leads while
// it holds the lock; it returns when the connection fails (the error)
// or ctx ends.
func (l *Leader) session(ctx context.Context, lead func(ctx context.Context, term int64)) error {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return err
	}
	// The session ends with the connection and the lock with it.
	defer func() { _ = closeConn(conn) }()
	for {
		var won bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&won); err != nil {
			return err
		}
		if won {
			if err := l.lead(ctx, conn, lead); err != nil || ctx.Err() != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.opts.After(l.opts.Retry):
		}
	}
}

// lead runs one term on conn, which holds the lock. It returns nil when
// ctx ended or lead returned (the lock released), or the connection's
// error when it failed.
func (l *Leader) lead(ctx context.Context, conn *pgx.Conn, lead func(ctx context.Context, term int64)) error {
	term, err := l.bumpTerm(ctx, conn)
	if err != nil {
		return err // the caller closes the connection, releasing the lock
	}
	l.mu.Lock()
	l.stats.Term = term
	l.stats.Elected++
	l.mu.Unlock()
	l.leading.Store(true)
	l.log.Info("leading", "name", l.opts.Name, "term", term)
	termCtx, endTerm := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(termCtx, term)
	}()
	var lost error
	for lost == nil {
		select {
		case <-ctx.Done():
		case <-done:
		case <-l.opts.After(l.opts.Retry):
			pctx, cancel := context.WithTimeout(ctx, l.opts.Retry+5*time.Second)
			lost = conn.Ping(pctx)
			cancel()
			if lost != nil && ctx.Err() != nil {
				lost = nil // the ping ended with ctx
			}
			if lost == nil {
				continue
			}
		}
		break
	}
	endTerm()
	<-done
	l.leading.Store(false)
	if lost != nil {
		l.mu.Lock()
		l.stats.Lost++
		l.mu.Unlock()
		l.log.Warn("leadership lost: the lock connection failed", "name", l.opts.Name, "term", term, "err", lost)
		return lost
	}
	l.log.Info("leadership given up", "name", l.opts.Name, "term", term)
	if ctx.Err() == nil {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", l.key); err != nil {
			return err
		}
	}
	return nil
}

const leaderDDL = `CREATE TABLE IF NOT EXISTS hub_leader (
	name text PRIMARY KEY,
	term bigint NOT NULL,
	elected_at timestamptz NOT NULL DEFAULT now()
)`

// bumpTerm starts a term: the lock holder alone writes hub_leader, so
// the terms of one Name only grow.
func (l *Leader) bumpTerm(ctx context.Context, conn *pgx.Conn) (int64, error) {
	if err := ensureSchema(ctx, conn, leaderDDL); err != nil {
		return 0, err
	}
	var term int64
	err := conn.QueryRow(ctx, `INSERT INTO hub_leader (name, term) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET term = hub_leader.term + 1, elected_at = now()
		RETURNING term`, l.opts.Name).Scan(&term)
	return term, err
}

// closeConn closes a connection of its own (not a pool's), waiting at
// most 5 s for the server's goodbye.
func closeConn(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return conn.Close(ctx)
}

// schemaLockKey serialises the package's CREATE TABLE IF NOT EXISTS
// (the store's, the leader's, the alert state's) between instances
// starting together (two concurrent ones can fail on the catalog's unique
// index).
var schemaLockKey = LockKey("\x00schema")

// beginner is what ensureSchema needs of a connection or pool.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ensureSchema runs ddl in a transaction holding schemaLockKey.
func ensureSchema(ctx context.Context, conn beginner, ddl string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("hubpg: schema: %w", err)
	}
	defer func() {
		// A committed transaction's Rollback is a no-op; a failed one's
		// error is the one already returned.
		_ = tx.Rollback(context.WithoutCancel(ctx))
	}()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaLockKey); err != nil {
		return fmt.Errorf("hubpg: schema: %w", err)
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("hubpg: schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("hubpg: schema: %w", err)
	}
	return nil
}
