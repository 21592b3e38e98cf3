package hubpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kioskedge/kioskedge/sync/hubstore"
)

// Errors returned by the store besides hubstore.ErrInvalid (an invalid
// write) and database errors.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("hubpg: store closed")
	// ErrCorrupt is returned when an agent's stored coverage cannot be
	// decoded.
	ErrCorrupt = errors.New("hubpg: corrupt agent state")
	// ErrNotFound is returned by Get for an unknown agent or sequence.
	ErrNotFound = errors.New("hubpg: not found")
)

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives the few things the store reports (read errors of
	// AgentState and Agents, which return no error; retried
	// transactions); nil discards.
	Logger *slog.Logger
	// MaxConns bounds the connection pool; default 8.
	MaxConns int32
	// Timeout bounds each operation (one Apply with its retries, one
	// read); default 30 s.
	Timeout time.Duration
	// insertMode picks how records are inserted (benchmarks compare them).
	insertMode insertMode
}

type insertMode int

const (
	// insertCopy COPYs the records straight into records; a key that
	// exists already fails the COPY and Apply redoes the transaction in
	// careful mode (INSERT … ON CONFLICT DO NOTHING RETURNING). Fastest
	// (see BenchmarkApply), and conflicts do not happen while every
	// writer goes through Apply.
	insertCopy insertMode = iota
	// insertUnnest is one INSERT … SELECT FROM unnest(arrays) ON
	// CONFLICT DO NOTHING; kept for the benchmark's comparison.
	insertUnnest
)

// Store is the PostgreSQL hub store. It is safe for concurrent use, also
// by several processes on one database.
type Store struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	timeout time.Duration
	mode    insertMode

	mu     sync.RWMutex // guards closed; held for reading by every operation
	closed bool
}

const schema = `
CREATE TABLE IF NOT EXISTS records (
	agent text   NOT NULL,
	seq   bigint NOT NULL,
	raw   bytea  NOT NULL,
	PRIMARY KEY (agent, seq)
);
CREATE TABLE IF NOT EXISTS agents (
	agent        text    PRIMARY KEY,
	received     bigint  NOT NULL DEFAULT 0,
	duplicates   bigint  NOT NULL DEFAULT 0,
	declared     bigint  NOT NULL DEFAULT 0,
	acked_before bigint  NOT NULL DEFAULT 0,
	contiguous   bigint  NOT NULL DEFAULT 0,
	highest      bigint  NOT NULL DEFAULT 0,
	coverage     bytea   NOT NULL DEFAULT '\x00',
	has_status   boolean NOT NULL DEFAULT false,
	online       boolean NOT NULL DEFAULT false,
	bdseq        bigint  NOT NULL DEFAULT 0,
	status       bytea,
	birth        bytea,
	health       bytea
);`

// Open connects to dsn (postgres://… or a libpq key=value string),
// creates the schema if missing and returns the store. It fails with the
// parse, connect or DDL error; nothing is left open then.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("hubpg: parse dsn: %w", err)
	}
	cfg.MaxConns = 8
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	s := &Store{log: opts.Logger, timeout: opts.Timeout, mode: opts.insertMode}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("hubpg: connect: %w", err)
	}
	if err := ensureSchema(ctx, s.pool, schema); err != nil {
		s.pool.Close()
		return nil, err
	}
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM agents").Scan(&n); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("hubpg: %w", err)
	}
	s.log.Info("hub store opened", "backend", "postgresql", "agents", n)
	return s, nil
}

// begin takes the read side of the closed flag and an operation context;
// the caller calls done.
func (s *Store) begin() (ctx context.Context, done func(), err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	return ctx, func() { cancel(); s.mu.RUnlock() }, nil
}

// Apply writes w in one transaction with hubstore.Apply's semantics (see
// hubstore.PlanWrite for duplicates, gap declarations, stale statuses and
// acked-before) and returns the same Result; Acks are the agents'
// contiguous coverage as committed, whatever other processes stored
// before. It returns an error wrapping hubstore.ErrInvalid (applying
// nothing) for an invalid write or a sequence above 2^63-1, ErrClosed
// after Close, ErrCorrupt for an undecodable stored coverage, or the
// database error; on any error nothing of w is stored. Deadlocks and
// serialization failures are retried up to 5 times.
func (s *Store) Apply(w hubstore.Write) (hubstore.Result, error) {
	if _, err := w.Validate(); err != nil {
		return hubstore.Result{}, err
	}
	for i := range w.Batches {
		if w.Batches[i].Last > math.MaxInt64 {
			return hubstore.Result{}, fmt.Errorf("%w: sequence %d above 2^63-1", hubstore.ErrInvalid, w.Batches[i].Last)
		}
	}
	ctx, done, err := s.begin()
	if err != nil {
		return hubstore.Result{}, err
	}
	defer done()
	if len(w.Batches)+len(w.Statuses)+len(w.Health) == 0 {
		return hubstore.Result{}, nil
	}
	careful := false
	for attempt := 1; ; attempt++ {
		res, err := s.apply(ctx, &w, careful)
		if err == nil {
			return res, nil
		}
		switch {
		case errors.Is(err, errConflict) && !careful:
			// Some record already existed: redo, noting which.
			careful = true
		case retryable(err) && attempt < 5:
			s.log.Warn("hub store transaction retried", "attempt", attempt, "err", err)
		default:
			return hubstore.Result{}, fmt.Errorf("hubpg: apply: %w", err)
		}
	}
}

// errConflict aborts a transaction whose record insert hit existing keys
// while not in careful mode.
var errConflict = errors.New("hubpg: record already stored")

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// row is an agents row as Apply reads it (rowColumns): the decision
// state, without the status, birth and health JSON (Apply only overwrites
// those).
type row struct {
	id                                          string
	received, duplicates, declared, ackedBefore int64
	coverage                                    []byte
	hasStatus, online                           bool
	bdseq                                       int64
}

const rowColumns = `agent, received, duplicates, declared, acked_before, coverage, has_status, online, bdseq`

// dest returns where Scan puts rowColumns.
func (r *row) dest() []any {
	return []any{&r.id, &r.received, &r.duplicates, &r.declared, &r.ackedBefore, &r.coverage, &r.hasStatus, &r.online, &r.bdseq}
}

// state decodes r; an undecodable coverage is ErrCorrupt.
func (r *row) state() (hubstore.State, error) {
	cov, err := hubstore.DecodeCoverage(r.coverage)
	if err != nil {
		return hubstore.State{}, fmt.Errorf("%w: agent %q: %v", ErrCorrupt, r.id, err)
	}
	return hubstore.State{ID: r.id, Received: uint64(r.received), Duplicates: uint64(r.duplicates),
		Declared: uint64(r.declared), AckedBefore: uint64(r.ackedBefore), Coverage: cov,
		HasStatus: r.hasStatus, Online: r.online, BdSeq: uint64(r.bdseq)}, nil
}

func (s *Store) apply(ctx context.Context, w *hubstore.Write, careful bool) (hubstore.Result, error) {
	ids := w.AgentIDs()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return hubstore.Result{}, err
	}
	// Rollback after a commit is a no-op; after a failure its error adds
	// nothing to the failure's.
	defer func() { _ = tx.Rollback(ctx) }()

	// Lock the agents' rows in sorted order (creating missing ones), so
	// two writers of overlapping agents queue instead of deadlocking.
	if _, err := tx.Exec(ctx, `INSERT INTO agents (agent) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT DO NOTHING`, ids); err != nil {
		return hubstore.Result{}, err
	}
	rows, err := tx.Query(ctx, `SELECT `+rowColumns+`
		FROM agents WHERE agent = ANY($1) ORDER BY agent FOR UPDATE`, ids)
	if err != nil {
		return hubstore.Result{}, err
	}
	states := make(map[string]row, len(ids))
	for rows.Next() {
		var r row
		if err := rows.Scan(r.dest()...); err != nil {
			rows.Close()
			return hubstore.Result{}, err
		}
		states[r.id] = r
	}
	if err := rows.Err(); err != nil {
		return hubstore.Result{}, err
	}
	plan, err := hubstore.PlanWrite(w, func(id string) (hubstore.State, error) {
		r, ok := states[id]
		if !ok {
			return hubstore.State{}, fmt.Errorf("agent %q row not locked", id)
		}
		return r.state()
	})
	if err != nil {
		return hubstore.Result{}, err
	}
	if err := s.insertRecords(ctx, tx, plan, careful); err != nil {
		return hubstore.Result{}, err
	}
	if err := updateAgents(ctx, tx, plan); err != nil {
		return hubstore.Result{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return hubstore.Result{}, err
	}
	return plan.Result, nil
}

// insertRecords inserts the plan's records. In careful mode it learns
// which already existed and counts them as duplicates in the plan;
// otherwise an existing record aborts with errConflict.
func (s *Store) insertRecords(ctx context.Context, tx pgx.Tx, plan *hubstore.Plan, careful bool) error {
	var n int
	for _, ap := range plan.Agents {
		n += len(ap.Records)
	}
	if n == 0 {
		return nil
	}
	agents := make([]string, 0, n)
	seqs := make([]int64, 0, n)
	raws := make([][]byte, 0, n)
	for _, ap := range plan.Agents {
		for _, e := range ap.Records {
			agents = append(agents, ap.State.ID)
			seqs = append(seqs, int64(e.Seq))
			raws = append(raws, e.Raw)
		}
	}
	insert := `INSERT INTO records (agent, seq, raw) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])
		ON CONFLICT (agent, seq) DO NOTHING`
	args := []any{agents, seqs, raws}
	switch {
	case !careful && s.mode == insertCopy:
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"records"}, []string{"agent", "seq", "raw"},
			pgx.CopyFromSlice(n, func(i int) ([]any, error) { return []any{agents[i], seqs[i], raws[i]}, nil }))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
			return errConflict
		}
		return err
	case !careful:
		tag, err := tx.Exec(ctx, insert, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != int64(n) {
			return errConflict
		}
		return nil
	}
	rows, err := tx.Query(ctx, insert+` RETURNING agent, seq`, args...)
	if err != nil {
		return err
	}
	type key struct {
		agent string
		seq   int64
	}
	inserted := map[key]bool{}
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.agent, &k.seq); err != nil {
			rows.Close()
			return err
		}
		inserted[k] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	res := &plan.Result
	for _, ap := range plan.Agents {
		a := &ap.State
		kept := ap.Records[:0:0]
		for _, e := range ap.Records {
			if inserted[key{a.ID, int64(e.Seq)}] {
				kept = append(kept, e)
				continue
			}
			a.Received--
			a.Duplicates++
			res.Stored--
			res.Duplicates++
			if d, ok := hubstore.GapCount(e.Raw); ok {
				a.Declared -= d
				res.Declared -= d
			}
		}
		ap.Records = kept
	}
	s.log.Warn("hub store: records already stored outside the coverage, counted as duplicates", "records", n-len(inserted))
	return nil
}

// updateAgents writes every planned agent's state in one statement.
func updateAgents(ctx context.Context, tx pgx.Tx, plan *hubstore.Plan) error {
	k := len(plan.Agents)
	var (
		ids                                                          = make([]string, 0, k)
		received, duplicates, declared, ackedBefore, cont, hi, bdseq = make([]int64, 0, k), make([]int64, 0, k), make([]int64, 0, k), make([]int64, 0, k), make([]int64, 0, k), make([]int64, 0, k), make([]int64, 0, k)
		cov                                                          = make([][]byte, 0, k)
		hasStatus, online, statusChanged, healthChanged              = make([]bool, 0, k), make([]bool, 0, k), make([]bool, 0, k), make([]bool, 0, k)
		status, health, birth                                        = make([][]byte, 0, k), make([][]byte, 0, k), make([][]byte, 0, k)
	)
	for _, ap := range plan.Agents {
		a := &ap.State
		ids = append(ids, a.ID)
		received = append(received, int64(a.Received))
		duplicates = append(duplicates, int64(a.Duplicates))
		declared = append(declared, int64(a.Declared))
		ackedBefore = append(ackedBefore, int64(a.AckedBefore))
		cont = append(cont, clampInt64(a.Coverage.Contiguous()))
		hi = append(hi, clampInt64(a.Coverage.Highest()))
		bdseq = append(bdseq, int64(a.BdSeq))
		cov = append(cov, a.Coverage.AppendEncoded(nil))
		hasStatus = append(hasStatus, a.HasStatus)
		online = append(online, a.Online)
		statusChanged = append(statusChanged, ap.StatusChanged)
		healthChanged = append(healthChanged, ap.HealthChanged)
		status = append(status, a.Status)
		health = append(health, a.Health)
		// Apply reads no birth: a non-nil one was set by this write (the
		// last accepted birth, even if a death followed it).
		birth = append(birth, a.Birth)
	}
	_, err := tx.Exec(ctx, `UPDATE agents AS a SET
		received = u.received, duplicates = u.duplicates, declared = u.declared,
		acked_before = u.acked_before, contiguous = u.contiguous, highest = u.highest,
		coverage = u.coverage, has_status = u.has_status, online = u.online, bdseq = u.bdseq,
		status = CASE WHEN u.status_changed THEN u.status ELSE a.status END,
		birth = CASE WHEN u.birth IS NOT NULL THEN u.birth ELSE a.birth END,
		health = CASE WHEN u.health_changed THEN u.health ELSE a.health END
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
			$8::bytea[], $9::boolean[], $10::boolean[], $11::bigint[], $12::boolean[], $13::bytea[], $14::boolean[], $15::bytea[], $16::bytea[])
			AS u(agent, received, duplicates, declared, acked_before, contiguous, highest,
			coverage, has_status, online, bdseq, status_changed, status, health_changed, health, birth)
		WHERE a.agent = u.agent`,
		ids, received, duplicates, declared, ackedBefore, cont, hi, cov, hasStatus, online, bdseq,
		statusChanged, status, healthChanged, health, birth)
	return err
}

// clampInt64 maps a coverage bound to bigint (the derived columns only;
// the coverage itself is stored exactly).
func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

const stateColumns = rowColumns + `, status, birth, health`

func scanState(sc pgx.Row) (hubstore.AgentState, error) {
	var r row
	var status, birth, health []byte
	if err := sc.Scan(append(r.dest(), &status, &birth, &health)...); err != nil {
		return hubstore.AgentState{}, err
	}
	st, err := r.state()
	if err != nil {
		return hubstore.AgentState{}, err
	}
	st.Status, st.Birth, st.Health = status, birth, health
	return st.Snapshot(), nil
}

// AgentState reads the agent's state from the database, and false if the
// database has never heard of the agent, after Close, or on a read error
// (logged).
func (s *Store) AgentState(id string) (hubstore.AgentState, bool) {
	ctx, done, err := s.begin()
	if err != nil {
		return hubstore.AgentState{}, false
	}
	defer done()
	a, err := scanState(s.pool.QueryRow(ctx, `SELECT `+stateColumns+` FROM agents WHERE agent = $1`, id))
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			s.log.Error("hub store: read agent state", "err", err)
		}
		return hubstore.AgentState{}, false
	}
	return a, true
}

// Agents reads every agent's state, sorted by id; nil after Close or on a
// read error (logged).
func (s *Store) Agents() []hubstore.AgentState {
	ctx, done, err := s.begin()
	if err != nil {
		return nil
	}
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT `+stateColumns+` FROM agents ORDER BY agent`)
	if err == nil {
		var out []hubstore.AgentState
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (hubstore.AgentState, error) { return scanState(r) })
		if err == nil {
			// Sorted by the database's collation; keep Go's byte order
			// like hubstore.
			slices.SortFunc(out, func(x, y hubstore.AgentState) int { return strings.Compare(x.ID, y.ID) })
			return out
		}
	}
	s.log.Error("hub store: read agents", "err", err)
	return nil
}

// ForEach calls fn for each stored record of agent with sequence ≥ from,
// in sequence order, streaming them from one query. raw is valid only
// during the call. It stops at fn's first error and returns it; an
// unknown agent yields no calls and no error. It returns ErrClosed after
// Close or the database error.
func (s *Store) ForEach(agentID string, from uint64, fn func(seq uint64, raw []byte) error) error {
	if from > math.MaxInt64 {
		return nil
	}
	ctx, done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT seq, raw FROM records WHERE agent = $1 AND seq >= $2 ORDER BY seq`, agentID, int64(from))
	if err != nil {
		return fmt.Errorf("hubpg: %w", err)
	}
	defer rows.Close()
	var seq int64
	var raw []byte
	for rows.Next() {
		if err := rows.Scan(&seq, &raw); err != nil {
			return fmt.Errorf("hubpg: %w", err)
		}
		if err := fn(uint64(seq), raw); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("hubpg: %w", err)
	}
	return nil
}

// Get returns the stored record of agent at seq, or ErrNotFound.
// Sequences covered only by a gap declaration are not found.
func (s *Store) Get(agentID string, seq uint64) ([]byte, error) {
	if seq > math.MaxInt64 {
		return nil, ErrNotFound
	}
	ctx, done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	var raw []byte
	err = s.pool.QueryRow(ctx, `SELECT raw FROM records WHERE agent = $1 AND seq = $2`, agentID, int64(seq)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("hubpg: %w", err)
	}
	return raw, nil
}

// Close waits for running operations, then closes the connection pool.
// It is idempotent; it always returns nil (pgxpool's Close reports
// nothing).
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.pool.Close()
	return nil
}
