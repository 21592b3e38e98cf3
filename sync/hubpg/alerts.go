package hubpg

import (
	"context"
	"encoding/json"
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
	// Closing a broken connection has nothing to report.
	_ = closeConn(a.conn)
	a.conn = nil
}

// RecordRange is an agent's records First..Last that one hub instance
// committed, told to the instance that leads so that it evaluates the
// record rules over every instance's share of the batches.
type RecordRange struct {
	Agent       string
	First, Last uint64
}

// recordsChannel is the NOTIFY channel of committed ranges; each payload
// names its deployment, so deployments on one database stay apart.
const recordsChannel = "kioskedge_hub_records"

// rangePayload is a NOTIFY payload (a few dozen bytes; PostgreSQL's
// limit is 8,000).
type rangePayload struct {
	Name  string `json:"n"`
	Agent string `json:"a"`
	First uint64 `json:"f"`
	Last  uint64 `json:"l"`
}

// NotifyRecords tells the listening instances of this deployment
// (RecordListener) of ranges this one committed: one NOTIFY each, all in
// one statement. Nobody listening is no error: the ranges are dropped.
// It returns the database's error.
func (a *AlertState) NotifyRecords(ranges []RecordRange) error {
	if len(ranges) == 0 {
		return nil
	}
	payloads := make([]string, len(ranges))
	for i, r := range ranges {
		b, err := json.Marshal(rangePayload{Name: a.name, Agent: r.Agent, First: r.First, Last: r.Last})
		if err != nil {
			return err // strings and integers always marshal
		}
		payloads[i] = string(b)
	}
	err := a.do(func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", recordsChannel, payloads)
		return err
	})
	if err != nil {
		return fmt.Errorf("hubpg: notify records: %w", err)
	}
	return nil
}

// RecordListener receives the ranges the instances of one deployment
// notify, on a connection of its own. Create it with AlertState.Listen,
// read with Next, then Close it.
type RecordListener struct {
	conn *pgx.Conn
	name string
}

// Listen connects and listens for this deployment's ranges; ranges
// notified from then on are delivered by Next. It returns the
// connection's error.
func (a *AlertState) Listen(ctx context.Context) (*RecordListener, error) {
	conn, err := pgx.ConnectConfig(ctx, a.cfg)
	if err != nil {
		return nil, fmt.Errorf("hubpg: listen: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+recordsChannel); err != nil {
		_ = closeConn(conn) // the LISTEN error is the news
		return nil, fmt.Errorf("hubpg: listen: %w", err)
	}
	return &RecordListener{conn: conn, name: a.name}, nil
}

// Next waits for the next range of this deployment and returns it, or
// ctx's error, or the connection's error (the listener is then useless:
// Close it and Listen again). Payloads it cannot decode are skipped.
func (l *RecordListener) Next(ctx context.Context) (RecordRange, error) {
	for {
		n, err := l.conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return RecordRange{}, ctx.Err()
			}
			return RecordRange{}, fmt.Errorf("hubpg: listen: %w", err)
		}
		var p rangePayload
		if json.Unmarshal([]byte(n.Payload), &p) != nil || p.Name != l.name || p.Agent == "" || p.First > p.Last {
			continue
		}
		return RecordRange{Agent: p.Agent, First: p.First, Last: p.Last}, nil
	}
}

// Close closes the listener's connection. Call it once.
func (l *RecordListener) Close() error { return closeConn(l.conn) }
