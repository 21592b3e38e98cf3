package hubrun

import (
	"encoding/json"
	"time"

	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// answerClock makes the hub answer agents' clock requests (wire.ClockRequest
// on <root>/v1/<agent>/time/req) with its own time on the agent's
// time topic, so kioskctl selftest can measure the box's clock offset
// (firmware-specs/commissioning-report.md §3). Bad requests are ignored.
// The subscription is remembered by the session and renewed on every
// connect; it ends with the session.
func answerClock(s *uplink.Session, root, shareGroup string, now func() time.Time) error {
	filter := wire.Filter(root, wire.LeafClockRequest)
	if shareGroup != "" {
		filter = wire.SharedFilter(shareGroup, root, wire.LeafClockRequest)
	}
	return s.Subscribe(filter, 0, func(topic string, payload []byte) {
		received := now()
		agent, leaf, err := wire.ParseTopic(root, topic)
		if err != nil || leaf != wire.LeafClockRequest {
			return
		}
		req, err := wire.DecodeClockRequest(payload)
		if err != nil {
			return
		}
		rep := wire.ClockReply{ID: req.ID, Sent: req.Sent, Received: received}
		rep.Replied = now()
		b, err := json.Marshal(rep)
		if err != nil {
			return // a struct of strings and times always encodes
		}
		// QoS 0: a lost reply only makes this one check time out.
		s.PublishAsync(uplink.Message{Topic: wire.Topics{Root: root, Agent: agent}.ClockReply(), QoS: 0, Payload: b})
	})
}
