package hubal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Defaults of ServerOptions.
const (
	DefaultQueueLen    = 1024
	DefaultWindow      = 8
	DefaultBytesPerSec = 8 << 20
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	Dir       *Dir          // required
	Root      string        // topic root; required
	Transport hub.Transport // required
	// ShareGroup, if set, subscribes to requests with
	// $share/<group>/… so that of several hubs side by side one answers.
	ShareGroup string
	// QueueLen bounds the agents with a request waiting; a request from
	// an agent already waiting replaces its earlier one (coalesced), one
	// from a new agent over the bound is dropped (the agent asks again at
	// its next connect). 0 takes DefaultQueueLen.
	QueueLen int
	// Window bounds the publishes awaiting the broker's PUBACK; 0 takes
	// DefaultWindow.
	Window int
	// BytesPerSec paces the messages sent, all agents together, so a
	// snapshot to many agents does not flood the broker; 0 takes
	// DefaultBytesPerSec, a negative value does not pace.
	BytesPerSec int
	Logger      *slog.Logger // nil discards
}

// ServerStats are the server's counters.
type ServerStats struct {
	Requests      uint64 // requests accepted
	BadRequests   uint64 // malformed requests or topics, dropped
	Coalesced     uint64 // requests replacing a waiting one of the same agent
	Dropped       uint64 // requests dropped on a full queue
	Snapshots     uint64 // snapshots sent
	Deltas        uint64 // delta messages sent
	Current       uint64 // requests answered with nothing: the agent is up to date
	NoList        uint64 // requests while no list is published
	Messages      uint64 // messages acknowledged by the broker
	Bytes         uint64
	PublishErrors uint64 // responses cut short by a failed publish
	PlanErrors    uint64 // requests the directory could not answer
}

// Server answers allowlist requests (hub-allowlist.md §6).
type Server struct {
	opts    ServerOptions
	log     *slog.Logger
	wake    chan struct{}
	running atomic.Bool

	mu      sync.Mutex
	order   []string
	pending map[string]wire.AllowlistRequest
	stats   ServerStats
}

// NewServer checks opts; it starts nothing. It returns ErrOptions for a
// missing Dir or Transport or an invalid Root.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Dir == nil || opts.Transport == nil {
		return nil, fmt.Errorf("%w: Dir and Transport are required", ErrOptions)
	}
	if opts.Root == "" {
		return nil, fmt.Errorf("%w: Root is required", ErrOptions)
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueueLen
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.BytesPerSec == 0 {
		opts.BytesPerSec = DefaultBytesPerSec
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{opts: opts, log: log, wake: make(chan struct{}, 1), pending: map[string]wire.AllowlistRequest{}}, nil
}

// Stats returns the counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Server) count(f func(*ServerStats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// onRequest is the subscription handler: it queues the request and returns.
func (s *Server) onRequest(topic string, payload []byte) {
	agent, leaf, err := wire.ParseTopic(s.opts.Root, topic)
	if err != nil || leaf != wire.LeafAllowlistRequest {
		s.count(func(st *ServerStats) { st.BadRequests++ })
		return
	}
	r, err := wire.DecodeAllowlistRequest(payload)
	if err != nil {
		s.count(func(st *ServerStats) { st.BadRequests++ })
		s.log.Warn("allowlist request dropped", "agent", agent, "bytes", len(payload), "err", err)
		return
	}
	s.mu.Lock()
	if old, ok := s.pending[agent]; ok {
		if old.Want == wire.WantSnapshot {
			r.Want = wire.WantSnapshot
		}
		s.pending[agent] = r
		s.stats.Coalesced++
		s.mu.Unlock()
		return
	}
	if len(s.order) >= s.opts.QueueLen {
		s.stats.Dropped++
		s.mu.Unlock()
		s.log.Warn("allowlist request dropped: queue full", "agent", agent)
		return
	}
	s.pending[agent] = r
	s.order = append(s.order, agent)
	s.stats.Requests++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Server) next() (string, wire.AllowlistRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return "", wire.AllowlistRequest{}, false
	}
	a := s.order[0]
	s.order = s.order[1:]
	r := s.pending[a]
	delete(s.pending, a)
	return a, r, true
}

// Run subscribes to the request topic of every agent and answers requests,
// one at a time, until ctx ends. It returns nil, or the subscription's
// error.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run called twice", ErrOptions)
	}
	filter := wire.Filter(s.opts.Root, wire.LeafAllowlistRequest)
	if s.opts.ShareGroup != "" {
		filter = wire.SharedFilter(s.opts.ShareGroup, s.opts.Root, wire.LeafAllowlistRequest)
	}
	if err := s.opts.Transport.Subscribe(filter, 1, s.onRequest); err != nil {
		return fmt.Errorf("hubal: subscribing: %w", err)
	}
	for {
		agent, r, ok := s.next()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
			}
			continue
		}
		s.answer(ctx, agent, r)
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (s *Server) answer(ctx context.Context, agent string, r wire.AllowlistRequest) {
	p, err := s.opts.Dir.Plan(r)
	if err != nil {
		s.count(func(st *ServerStats) { st.PlanErrors++ })
		s.log.Error("allowlist request not answered", "agent", agent, "err", err)
		return
	}
	switch p.Kind {
	case PlanNone:
		s.count(func(st *ServerStats) { st.NoList++ })
		return
	case PlanCurrent:
		s.count(func(st *ServerStats) { st.Current++ })
		return
	}
	s.log.Info("allowlist sending", "agent", agent, "have", r.Have, "want", r.Want, "reason", r.Reason,
		"kind", p.Kind, "version", p.Version, "messages", len(p.Messages))
	if err := s.Send(ctx, agent, p.Messages); err != nil {
		s.count(func(st *ServerStats) { st.PublishErrors++ })
		s.log.Warn("allowlist send cut short", "agent", agent, "err", err)
		return
	}
	s.count(func(st *ServerStats) {
		if p.Kind == PlanSnapshot {
			st.Snapshots++
		} else {
			st.Deltas += uint64(len(p.Messages))
		}
	})
}

// Send publishes msgs, in order, on agent's allowlist topic at QoS 1, not
// retained, at most Window awaiting the broker and paced to BytesPerSec.
// It returns the first publish error (the rest is not sent) or ctx's.
func (s *Server) Send(ctx context.Context, agent string, msgs [][]byte) error {
	return send(ctx, s.opts.Transport, wire.Topics{Root: s.opts.Root, Agent: agent}.Allowlist(), msgs,
		s.opts.Window, s.opts.BytesPerSec, func(n int) {
			s.count(func(st *ServerStats) { st.Messages++; st.Bytes += uint64(n) })
		})
}

// Send publishes msgs on topic like Server.Send, for a publisher without a
// Server (hubd allowlist push).
func Send(ctx context.Context, tr hub.Transport, topic string, msgs [][]byte) error {
	return send(ctx, tr, topic, msgs, DefaultWindow, DefaultBytesPerSec, func(int) {})
}

func send(ctx context.Context, tr hub.Transport, topic string, msgs [][]byte, window, rate int, sent func(int)) error {
	type inflight struct {
		done <-chan error
		n    int
	}
	var q []inflight
	wait := func() error {
		f := q[0]
		q = q[1:]
		select {
		case err := <-f.done:
			if err == nil {
				sent(f.n)
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	start := time.Now()
	var total int
	for _, m := range msgs {
		if len(q) == window {
			if err := wait(); err != nil {
				return err
			}
		}
		if rate > 0 {
			// Sleep until the bytes sent so far fit the rate.
			due := start.Add(time.Duration(float64(total) / float64(rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				}
			}
		}
		q = append(q, inflight{tr.PublishAsync(hub.Message{Topic: topic, QoS: 1, Payload: m}), len(m)})
		total += len(m)
	}
	for len(q) > 0 {
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}
