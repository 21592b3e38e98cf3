package hubca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// DefaultQueueLen bounds the requests waiting for an answer.
const DefaultQueueLen = 256

// ResponderOptions configure NewResponder.
type ResponderOptions struct {
	CA        *CA           // required
	Root      string        // topic root; required
	Transport hub.Transport // required
	// ShareGroup, if set, subscribes with $share/<group>/… so that of
	// several hubs side by side one answers each request. The hubs must
	// then share the CA directory on one host (state.lock is a local
	// lock).
	ShareGroup string
	// QueueLen bounds the requests waiting; more are dropped (the box
	// times out and asks again). 0 takes DefaultQueueLen.
	QueueLen int
	Logger   *slog.Logger // nil discards
}

// ResponderStats are the responder's counters.
type ResponderStats struct {
	Requests      uint64 // requests taken
	Issued        uint64 // certificates sent
	Refused       uint64 // refusals sent (any code)
	BadTopics     uint64 // messages on a topic that is not a request, dropped
	Dropped       uint64 // requests dropped on a full queue
	PublishErrors uint64 // answers the broker did not take
}

// Responder answers enrolment requests (enrolment.md §4).
type Responder struct {
	opts    ResponderOptions
	log     *slog.Logger
	queue   chan request
	running atomic.Bool

	mu    sync.Mutex
	stats ResponderStats
}

type request struct {
	id      string
	payload []byte
}

// NewResponder checks opts; it starts nothing. It returns ErrOptions for a
// missing CA, Transport or Root.
func NewResponder(opts ResponderOptions) (*Responder, error) {
	if opts.CA == nil || opts.Transport == nil || opts.Root == "" {
		return nil, fmt.Errorf("%w: CA, Transport and Root are required", ErrOptions)
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueueLen
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Responder{opts: opts, log: log, queue: make(chan request, opts.QueueLen)}, nil
}

// Stats returns the counters.
func (r *Responder) Stats() ResponderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *Responder) count(f func(*ResponderStats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

// onMessage is the subscription handler: it queues and returns.
func (r *Responder) onMessage(topic string, payload []byte) {
	id, err := wire.ParseEnrolRequestTopic(r.opts.Root, topic)
	if err != nil {
		r.count(func(s *ResponderStats) { s.BadTopics++ })
		return
	}
	select {
	case r.queue <- request{id: id, payload: payload}:
	default:
		r.count(func(s *ResponderStats) { s.Dropped++ })
		r.log.Warn("enrolment request dropped: queue full", "request", id)
	}
}

// Run subscribes to <root>/v1/$enrol/+/req and answers each request in
// turn until ctx ends. It returns nil then, or the subscription's error.
func (r *Responder) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run called twice", ErrOptions)
	}
	filter := wire.EnrolRequestFilter(r.opts.Root)
	if r.opts.ShareGroup != "" {
		filter = "$share/" + r.opts.ShareGroup + "/" + filter
	}
	if err := r.opts.Transport.Subscribe(filter, 1, r.onMessage); err != nil {
		return fmt.Errorf("hubca: subscribing: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case q := <-r.queue:
			r.answer(ctx, q)
		}
	}
}

// Answer decides one request: the response to send. It is Run's core,
// without the transport.
func (r *Responder) Answer(id string, payload []byte) wire.EnrolResponse {
	resp := wire.EnrolResponse{ID: id}
	req, err := wire.DecodeEnrolRequest(payload)
	if err == nil && req.ID != id {
		err = fmt.Errorf("%w: request id differs from the topic's", wire.ErrBadEnrol)
	}
	if err != nil {
		resp.Code, resp.Message = wire.EnrolBadRequest, err.Error()
		r.log.Warn("enrolment refused", "request", id, "code", resp.Code, "err", err)
		return resp
	}
	cert, err := r.opts.CA.Enrol(req.Token, req.ID, []byte(req.CSR), req.Agent)
	if err != nil {
		resp.Code, resp.Message = Code(err), Message(err)
		if resp.Code == wire.EnrolInternal {
			r.log.Error("enrolment failed", "request", id, "agent", req.Agent, "err", err)
		} else {
			r.log.Warn("enrolment refused", "request", id, "agent", req.Agent, "code", resp.Code, "err", err)
		}
		return resp
	}
	r.log.Info("box enrolled", "request", id, "agent", req.Agent)
	resp.OK, resp.Cert, resp.CA = true, string(cert), string(r.opts.CA.CertPEM())
	return resp
}

// Message is the operator-facing text sent with a refusal: what happened
// and what to do. It never contains the token.
func Message(err error) string {
	switch Code(err) {
	case wire.EnrolTokenUnknown:
		return "claim token not known to the hub (mistyped, or made for another agent or another hub): check it, or ask the operations team for a new one (hubd claim create)"
	case wire.EnrolTokenUsed:
		return "claim token already used: ask the operations team for a new one (hubd claim create)"
	case wire.EnrolTokenExpired:
		return "claim token expired: ask the operations team for a new one (hubd claim create)"
	case wire.EnrolBadCSR:
		return err.Error()
	case wire.EnrolAgentTaken:
		return err.Error() + ": this agent id is in use by another box; check the agent id, or ask for a re-enrolment token (hubd claim create -agent ID -reenrol)"
	}
	return "the hub could not issue a certificate; try again later or enrol offline"
}

func (r *Responder) answer(ctx context.Context, q request) {
	r.count(func(s *ResponderStats) { s.Requests++ })
	resp := r.Answer(q.id, q.payload)
	b, err := wire.EncodeEnrolResponse(resp)
	if err != nil {
		r.log.Error("enrolment response not encodable", "request", q.id, "err", err)
		return
	}
	m := hub.Message{Topic: wire.EnrolResponseTopic(r.opts.Root, q.id), QoS: 1, Payload: b}
	select {
	case err = <-r.opts.Transport.PublishAsync(m):
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		r.count(func(s *ResponderStats) { s.PublishErrors++ })
		r.log.Warn("enrolment response not published", "request", q.id, "err", err)
		return
	}
	r.count(func(s *ResponderStats) {
		if resp.OK {
			s.Issued++
		} else {
			s.Refused++
		}
	})
}
