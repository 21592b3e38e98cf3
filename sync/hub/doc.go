// Package hub is the hub-side ingest of the store-and-forward protocol
// (hub-protocol.md §3–§6) and its HTTP JSON API.
//
// Agents publish event batches to <root>/v1/<agent>/events. The hub
// decodes each one in the transport's handler (bad input is counted by
// reason and dropped, never fatal), queues it to one committer goroutine,
// which takes everything queued (up to a bound), drops records whose
// sequence is already covered, writes the rest in one hubstore transaction
// (one fsync for many batches), and only then publishes each touched
// agent's end-to-end ack, retained at QoS 1 on <root>/v1/<agent>/ack:
// "every sequence ≤ Through is stored here". Agents delete only on that
// ack, so a hub crash between commit and ack costs a resend, never a
// record.
//
// Retained status (birth/death with BdSeq; a lower BdSeq than the stored
// one is stale and ignored) and health snapshots go through the same
// committer, so they share its commits.
//
// A lifecycle detector watches what the committer applies: a missing
// sequence range standing longer than Options.GapAge, a status with a
// lower bdseq than the stored one, a birth with a new boot id over a birth
// (no death between). It counts them (Stats), keeps a row per agent
// (Lifecycle, GET /api/lifecycle) and, given Options.CommandKey, publishes
// a signed agent.rebirth on the agent's cmd topic (hub-commands.md §3) at
// most once per Options.RebirthInterval per agent: the agent republishes
// its birth and health and resends what is not acked. The hub's own
// retained status (<root>/v1/$hub/status, hubrun) is skipped by ingest.
//
// The hub declares the Transport it needs; cmd/hubd adapts a
// *uplink.Session to it, tests use an in-memory fake. This package imports
// no MQTT library.
package hub
