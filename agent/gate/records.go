package gate

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/access"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Record kinds written by the gate (firmware-specs/gate-records.md;
// access.decision is hub-protocol.md §4.3).
const (
	KindDecision = wire.KindAccess // "access.decision"
	KindEvent    = "door.event"
	KindAlarm    = "door.alarm"
	KindDropped  = "gate.dropped"
)

type recKind uint8

const (
	recDecision recKind = iota + 1
	recEvent
	recAlarm
	recDropped
)

// entry is a record waiting for the writer, kept unformatted so the
// callers that queue it (Present, Input) do no encoding.
type entry struct {
	kind    recKind
	at      time.Time
	door    string
	name    string // door.event event or door.alarm alarm
	by      string
	command string
	reader  string
	op      string
	errText string
	count   int
	active  bool
	hasMode bool
	mode    access.Mode
	until   time.Time // gate.dropped: the last dropped record's time
	dec     access.Decision
}

// queue is the bounded FIFO between the callers and the writer. When it
// is full a new entry is dropped and counted; a gate.dropped entry takes
// the place of the run of dropped entries as soon as there is room.
type queue struct {
	mu                     sync.Mutex
	buf                    []entry
	head, n                int
	dropping               int // entries dropped since the last gate.dropped
	dropFirst, dropLast    time.Time
	written, dropped, errs uint64
	rejected               uint64
	wake                   chan struct{}
}

func (q *queue) init(size int) {
	q.buf = make([]entry, size)
	q.wake = make(chan struct{}, 1)
}

func (q *queue) put(e entry) {
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
}

// flushDrops queues the gate.dropped entry if entries were dropped and
// there is room; q.mu is held.
func (q *queue) flushDrops(room int) {
	if q.dropping > 0 && len(q.buf)-q.n >= room {
		q.put(entry{kind: recDropped, at: q.dropFirst, until: q.dropLast, count: q.dropping})
		q.dropping = 0
	}
}

// push queues e without ever blocking on the writer.
func (q *queue) push(e entry) {
	q.mu.Lock()
	q.flushDrops(2) // room for the marker and e, so e stays after it
	if q.dropping > 0 || q.n == len(q.buf) {
		if q.dropping == 0 {
			q.dropFirst = e.at
		}
		q.dropping++
		q.dropped++
		q.dropLast = e.at
	} else {
		q.put(e)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) peek() (entry, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return entry{}, false
	}
	return q.buf[q.head], true
}

// pop removes the head after the writer stored it (or rejected it).
func (q *queue) pop(written bool) {
	q.mu.Lock()
	q.buf[q.head] = entry{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if written {
		q.written++
	} else {
		q.rejected++
	}
	q.flushDrops(1)
	q.mu.Unlock()
}

// Stats counts the gate's records.
type Stats struct {
	// Queued records wait for the outbox; Written were appended.
	Queued  int
	Written uint64
	// Dropped records never reached the queue (it was full); each run of
	// them is replaced by a gate.dropped record.
	Dropped uint64
	// AppendErrors counts failed Append calls (each retried); Rejected
	// the records the outbox refused as malformed (wire.ErrBadRecord),
	// which are not retried.
	AppendErrors, Rejected uint64
}

// Stats returns the record counters.
func (g *Gate) Stats() Stats {
	q := &g.q
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Queued: q.n, Written: q.written, Dropped: q.dropped, AppendErrors: q.errs, Rejected: q.rejected}
}

// Bodies, field order as in firmware-specs/gate-records.md.
type decisionBody struct {
	Door      string `json:"door"`
	Reader    string `json:"reader"`
	Cred      string `json:"cred,omitempty"`
	Result    string `json:"result"`
	Reason    string `json:"reason"`
	LatencyUS *int64 `json:"latency_us,omitempty"`
}

type eventBody struct {
	Door      string `json:"door"`
	Event     string `json:"event"`
	By        string `json:"by,omitempty"`
	Mode      string `json:"mode,omitempty"`
	CommandID string `json:"command_id,omitempty"`
}

type alarmBody struct {
	Door    string `json:"door"`
	Alarm   string `json:"alarm"`
	Active  bool   `json:"active"`
	Reader  string `json:"reader,omitempty"`
	Denials int    `json:"denials,omitempty"`
	Op      string `json:"op,omitempty"`
	Error   string `json:"error,omitempty"`
}

type droppedBody struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
	Until  string `json:"until"`
}

// Reason returns the access.decision reason for an engine code: the
// engine's code, except "allowlist" for a grant by the allowlist
// (hub-protocol.md §4.3).
func Reason(c access.Code) string {
	if c == access.Granted {
		return "allowlist"
	}
	return string(c)
}

// record builds the outbox record of e.
func record(e entry) wire.Record {
	var body any
	kind := ""
	switch e.kind {
	case recDecision:
		kind = KindDecision
		b := decisionBody{Door: e.door, Reader: e.dec.Reader, Result: "denied", Reason: Reason(e.dec.Reason)}
		if e.dec.Granted {
			b.Result = "granted"
		}
		if e.dec.Hashed {
			b.Cred = hex.EncodeToString(e.dec.CredentialHash[:])
		}
		if !e.dec.ReadAt.IsZero() {
			us := max(e.dec.Time.Sub(e.dec.ReadAt).Microseconds(), 0)
			b.LatencyUS = &us
		}
		body = b
	case recEvent:
		kind = KindEvent
		b := eventBody{Door: e.door, Event: e.name, By: e.by, CommandID: e.command}
		if e.hasMode {
			b.Mode = e.mode.String()
		}
		body = b
	case recAlarm:
		kind = KindAlarm
		body = alarmBody{Door: e.door, Alarm: e.name, Active: e.active, Reader: e.reader, Denials: e.count, Op: e.op, Error: e.errText}
	case recDropped:
		kind = KindDropped
		body = droppedBody{Reason: "queue_full", Count: e.count, Until: e.until.Format(time.RFC3339Nano)}
	}
	// These bodies hold only strings, numbers and booleans: Marshal
	// cannot fail.
	raw, _ := json.Marshal(body)
	return wire.Record{Kind: kind, Class: wire.ClassCritical, Time: e.at, Body: raw}
}

// Run writes the queued records to the outbox, in order, until ctx ends
// or Close is called. A failed Append is retried with back-off on the
// clock (RetryMin doubling to RetryMax) and the queue waits behind it, so
// nothing is reordered or lost while the queue has room; a record the
// outbox refuses as malformed (wire.ErrBadRecord) is logged, counted and
// skipped. When ctx ends or Close is called, Run halts every door, writes
// what is queued (one attempt each, for at most DrainTimeout) and returns
// nil, or an error wrapping ErrUndrained with the number of records left.
// If the writer panics (an outbox bug), Run recovers, halts every door and
// returns an error wrapping ErrPanic: the gate no longer actuates and the
// caller should treat it as fatal. Run may be called once; a second call
// returns ErrRunning, a call after Close ErrClosed.
func (g *Gate) Run(ctx context.Context) (err error) {
	g.runMu.Lock()
	switch {
	case g.running:
		g.runMu.Unlock()
		return ErrRunning
	case g.ran:
		g.runMu.Unlock()
		return ErrClosed
	}
	select {
	case <-g.stop:
		g.runMu.Unlock()
		return ErrClosed
	default:
	}
	g.running, g.ran = true, true
	g.runMu.Unlock()
	defer func() {
		g.runMu.Lock()
		g.running = false
		g.runMu.Unlock()
		close(g.runDone)
	}()
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("record writer panicked; doors halted", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			g.halt()
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	g.write(ctx)
	g.halt()
	return g.drain()
}

// write is the writer loop; it returns when ctx ends or Close is called.
func (g *Gate) write(ctx context.Context) {
	backoff := g.cfg.RetryMin
	wait := make(chan struct{}, 1)
	var (
		cur     wire.Record
		haveCur bool
	)
	for {
		e, ok := g.q.peek()
		if !ok {
			select {
			case <-g.q.wake:
				continue
			case <-ctx.Done():
				return
			case <-g.stop:
				return
			}
		}
		if !haveCur {
			cur, haveCur = record(e), true
		}
		_, err := g.out.Append(ctx, cur)
		if err == nil || errors.Is(err, wire.ErrBadRecord) {
			if err != nil {
				g.log.Error("outbox refused a record", "kind", cur.Kind, "err", err)
			}
			g.q.pop(err == nil)
			haveCur = false
			backoff = g.cfg.RetryMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		g.q.mu.Lock()
		g.q.errs++
		n := g.q.errs
		g.q.mu.Unlock()
		g.log.Warn("outbox append failed; retrying", "kind", cur.Kind, "failures", n, "backoff", backoff, "err", err)
		t := g.clock.AfterFunc(backoff, func() {
			select {
			case wait <- struct{}{}:
			default:
			}
		})
		select {
		case <-wait:
		case <-ctx.Done():
			t.Stop()
			return
		case <-g.stop:
			t.Stop()
			return
		}
		backoff = min(2*backoff, g.cfg.RetryMax)
	}
}

// drain writes what is queued, one attempt per record, in order, for at
// most DrainTimeout on the clock.
func (g *Gate) drain() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := g.clock.AfterFunc(g.cfg.DrainTimeout, cancel)
	defer t.Stop()
	for ctx.Err() == nil {
		e, ok := g.q.peek()
		if !ok {
			return nil
		}
		_, err := g.out.Append(ctx, record(e))
		switch {
		case err == nil:
			g.q.pop(true)
		case errors.Is(err, wire.ErrBadRecord):
			g.q.pop(false)
		default:
			left := g.Stats().Queued
			g.log.Error("records not written at shutdown", "count", left, "err", err)
			return fmt.Errorf("%w: %d left: %w", ErrUndrained, left, err)
		}
	}
	left := g.Stats().Queued
	if left == 0 {
		return nil
	}
	g.log.Error("records not written at shutdown", "count", left)
	return fmt.Errorf("%w: %d left after %v", ErrUndrained, left, g.cfg.DrainTimeout)
}
