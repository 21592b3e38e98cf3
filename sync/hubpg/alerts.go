package hubpg

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrFenced is returned by AlertState.Save when a leader of a newer term
// saved the state: this instance lost the leadership and its state is
// stale.
var ErrFenced = errors.New("hubpg: alert state saved by a newer leader")

// alertStateTimeout bounds one Load or Save (connect included).
const alertStateTimeout = 10 * time.Second

const alertDDL = `CREATE TABLE IF NOT EXISTS hub_alert_state (
	name text PRIMARY KEY,
	state bytea NOT NULL,
	term bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// AlertState is a hubalert.StateStore in PostgreSQL: the alert state of
// one hub deployment is one row of hub_alert_state, shared by its
// instances. The leader saves it with the term its Leader won
// (SetTerm); a save by an older term than the row's is refused with
// ErrFenced, so a deposed leader cannot overwrite its successor's state.
// It holds one connection, opened again after a failure; it is safe for
// concurrent use.
type AlertState struct {
	cfg  *pgx.ConnConfig
	name string
	term atomic.Int64

	mu   sync.Mutex // guards conn
	conn *pgx.Conn
}

// OpenAlertState connects to dsn, creates hub_alert_state if missing and
// returns the state of the deployment called name (hubrun passes the
// topic root). It returns ErrLeaderOptions for an empty name or a DSN
// pgx cannot parse, or the connection's or the schema's error.
func OpenAlertState(ctx context.Context, dsn, name string) (*AlertState, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: alert state name is required", ErrLeaderOptions)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLeaderOptions, err)
	}
	a := &AlertState{cfg: cfg, name: name}
	a.mu.Lock()
	defer a.mu.Unlock()
	conn, err := a.connLocked(ctx)
	if err != nil {
		return nil, err
	}
	if err := ensureSchema(ctx, conn, alertDDL); err != nil {
		a.dropLocked()
		return nil, err
	}
	return a, nil
}

// SetTerm sets the term later saves carry and claims the saved state
// for it: from then on a save by an older term is refused, even before
// this one saves. The leader calls it with the term it won (Leader.Run
// passes it) before it loads and runs the alerts. It returns the
// database's error; the term is set all the same.
func (a *AlertState) SetTerm(term int64) error {
	a.term.Store(term)
	err := a.do(func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "UPDATE hub_alert_state SET term = $2 WHERE name = $1 AND term < $2", a.name, term)
		return err
	})
	if err != nil {
		return fmt.Errorf("hubpg: alert state: %w", err)
	}
	return nil
}

// Load returns the saved state, or nil and no error when none was saved.
func (a *AlertState) Load() ([]byte, error) {
	var doc []byte
	err := a.do(func(ctx context.Context, conn *pgx.Conn) error {
		err := conn.QueryRow(ctx, "SELECT state FROM hub_alert_state WHERE name = $1", a.name).Scan(&doc)
		if errors.Is(err, pgx.ErrNoRows) {
			doc = nil
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hubpg: alert state: %w", err)
	}
	return doc, nil
}

// Save replaces the saved state with doc, with the term of SetTerm. It
// returns ErrFenced when the row holds a newer term, or the database's
// error.
func (a *AlertState) Save(doc []byte) error {
	if doc == nil {
		doc = []byte{}
	}
	term := a.term.Load()
	err := a.do(func(ctx context.Context, conn *pgx.Conn) error {
		tag, err := conn.Exec(ctx, `INSERT INTO hub_alert_state (name, state, term) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET state = excluded.state, term = excluded.term, updated_at = now()
			WHERE hub_alert_state.term <= excluded.term`, a.name, doc, term)
		if err == nil && tag.RowsAffected() == 0 {
			return ErrFenced
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrFenced) {
		return fmt.Errorf("hubpg: alert state: %w", err)
	}
	return err
}

// Close closes the connection. It is idempotent.
func (a *AlertState) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dropLocked()
	return nil
}

// do runs fn on the connection, bounded by alertStateTimeout. When the
// connection turns out closed (the server restarted, the session was
// terminated) it connects again and runs fn once more: both of
// AlertState's statements can be repeated.
func (a *AlertState) do(fn func(ctx context.Context, conn *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), alertStateTimeout)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	var err error
	for range 2 {
		var conn *pgx.Conn
		if conn, err = a.connLocked(ctx); err != nil {
			return err
		}
		if err = fn(ctx, conn); err == nil || !conn.IsClosed() {
			return err
		}
		a.dropLocked()
	}
	return err
}

func (a *AlertState) connLocked(ctx context.Context) (*pgx.Conn, error) {
	if a.conn != nil && !a.conn.IsClosed() {
		return a.conn, nil
	}
	conn, err := pgx.ConnectConfig(ctx, a.cfg)
	if err != nil {
		return nil, err
	}
	a.conn = conn
	return conn, nil
}

func (a *AlertState) dropLocked() {
	if a.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Closing a broken connection has nothing to report.
	_ = a.conn.Close(ctx)
	a.conn = nil
}
