// Package uplink is the agent's and the hub's only door to MQTT: it is the
// one package in the project that imports paho.mqtt.golang.
//
// It has two parts:
//
//   - Session is a small MQTT 3.1.1 session: TLS with client certificates
//     (plaintext only when explicitly allowed), its own reconnect loop with
//     capped exponential back-off and full jitter (paho's auto-reconnect is
//     off; after an established connection is lost the retries are spread
//     over at least Backoff.Spread, so a fleet does not return to a
//     restarted broker in the same second), subscriptions remembered and renewed on every connect, a Will,
//     publishes that wait for the broker's PUBACK, and an oversized-message
//     guard. Both the agent's uplink and cmd/hubd use it.
//   - Uplink drains the durable outbox to the hub over a Session, following
//     the hub protocol (firmware-specs/hub-protocol.md, package sync/wire):
//     a retained birth on every connect, the Will as death, both carrying a
//     birth/death sequence (bdseq) persisted across restarts; the birth also
//     carries how far a hub acked (acked_through), and is republished when
//     an ack timeout finds that value grown since the last birth, so a hub
//     that lost its store can ack again; event batches
//     at QoS 1 with a window of batches in flight; records are deleted from
//     the outbox only when the hub acknowledges them end to end ("stored
//     through sequence N"), never on the broker's PUBACK, because a broker
//     may acknowledge a publish and still drop it. The uplink also watches
//     the hub's own retained status (<root>/v1/$hub/status): when the hub
//     comes (back) online it resends what is in flight at once, instead of
//     waiting for the ack timeout.
//
// paho's loggers are process-wide variables; this package bridges them to
// slog once, at package initialisation (see paholog.go).
package uplink
