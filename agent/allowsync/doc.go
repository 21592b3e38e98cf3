// Package allowsync keeps the gate's allowlist store in step with the hub
// (firmware-specs/hub-allowlist.md). The wiring hands it every payload of
// the agent's allowlist topic (Handle, which never blocks) and a function
// that publishes requests; Run applies the messages to the store on its
// own goroutine:
//
//   - Snapshot chunks are staged in index order: chunk 0 begins (or
//     restarts) a snapshot, the last one commits it. A duplicate chunk is
//     ignored; a missing or out-of-order chunk, a malformed chunk or a
//     wrong checksum abandons the snapshot (the list in effect stays) and
//     requests a new one.
//   - Deltas apply in version order; a stale one is ignored, a gap asks
//     the hub to catch the store up.
//   - At start, and whenever the wiring calls Resync (after each MQTT
//     connect), it asks to catch up from its current version.
//
// The queue between Handle and Run is bounded; a message that does not
// fit is dropped, counted, and a snapshot is requested once the queue
// drains, since the dropped message may have been any part of one.
//
// It imports no MQTT library: bytes in, requests out. The wiring (as
// cmd/hubd's end-to-end test does it):
//
//	sy, _ := allowsync.New(allowsync.Options{Store: store, Request: func(r wire.AllowlistRequest) error {
//		b, err := json.Marshal(r)
//		if err != nil {
//			return err
//		}
//		session.PublishAsync(uplink.Message{Topic: topics.AllowlistRequest(), QoS: 1, Payload: b})
//		return nil
//	}})
//	session.Subscribe(topics.Allowlist(), 1, func(_ string, p []byte) { sy.Handle(p) })
//	// and each group topic the box is in: wire.GroupAllowlistTopic(root, group)
//	// SessionOptions.OnConnect: func(context.Context, *uplink.Session) { sy.Resync() }
//	go sy.Run(ctx)
//
// Stats().Health() is the health snapshot's allowlist.
package allowsync
