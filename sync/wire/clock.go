package wire

import (
	"fmt"
	"time"
)

// Clock check leaves (firmware-specs/commissioning-report.md §3): an agent
// publishes a ClockRequest on time/req, the hub answers on time with a
// ClockReply. Both stay inside the agent's own <root>/v1/<agent>/ tree, so
// a broker ACL confining a box to its tree allows them.
const (
	LeafClockRequest = "time/req"
	LeafClockReply   = "time"
)

// ClockRequest is the topic an agent asks the hub for its time on.
func (t Topics) ClockRequest() string { return t.leaf(LeafClockRequest) }

// ClockReply is the topic the hub answers a clock request on.
func (t Topics) ClockReply() string { return t.leaf(LeafClockReply) }

// ClockRequest asks the hub for its time, JSON on Topics.ClockRequest.
// ID pairs the reply with the request; Sent (T1) is the agent's clock when
// it sent the request, echoed back.
type ClockRequest struct {
	ID   string    `json:"id"`
	Sent time.Time `json:"sent"`
}

// ClockReply is the hub's answer: the request's ID and Sent echoed, and the
// hub's clock when the request arrived (Received, T2) and when the reply
// left (Replied, T3).
type ClockReply struct {
	ID       string    `json:"id"`
	Sent     time.Time `json:"sent"`
	Received time.Time `json:"received"`
	Replied  time.Time `json:"replied"`
}

// DecodeClockRequest parses a request. It returns an error wrapping
// ErrBadMessage for oversized or malformed JSON, an ID empty or over 64
// bytes, or a zero Sent.
func DecodeClockRequest(b []byte) (ClockRequest, error) {
	var r ClockRequest
	if err := decodeJSON(b, &r); err != nil {
		return ClockRequest{}, err
	}
	if r.ID == "" || len(r.ID) > 64 || r.Sent.IsZero() {
		return ClockRequest{}, fmt.Errorf("%w: clock request needs an id of 1..64 bytes and a sent time", ErrBadMessage)
	}
	return r, nil
}

// DecodeClockReply parses a reply. It returns an error wrapping
// ErrBadMessage for oversized or malformed JSON or a missing field.
func DecodeClockReply(b []byte) (ClockReply, error) {
	var r ClockReply
	if err := decodeJSON(b, &r); err != nil {
		return ClockReply{}, err
	}
	if r.ID == "" || r.Sent.IsZero() || r.Received.IsZero() || r.Replied.IsZero() {
		return ClockReply{}, fmt.Errorf("%w: clock reply needs id, sent, received and replied", ErrBadMessage)
	}
	return r, nil
}

// ClockOffset returns the NTP-style estimate from a reply and the agent's
// clock when it arrived (T4): offset = ((T2−T1) + (T3−T4)) / 2 is how far
// the hub's clock is ahead of the agent's, and delay = (T4−T1) − (T3−T2) is
// the round trip spent on the network. The offset is exact when the two
// legs took equally long; its error is at most delay/2.
func ClockOffset(r ClockReply, arrived time.Time) (offset, delay time.Duration) {
	t1, t2, t3, t4 := r.Sent, r.Received, r.Replied, arrived
	offset = (t2.Sub(t1) + t3.Sub(t4)) / 2
	delay = t4.Sub(t1) - t3.Sub(t2)
	return offset, delay
}
