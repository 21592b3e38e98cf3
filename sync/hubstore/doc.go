// Package hubstore is the hub's durable store of what agents sent: every
// record of every agent, keyed by its per-agent sequence number, plus per
// agent the set of sequence ranges the hub holds ("coverage"), counters, the
// latest status (birth/death) and the latest health snapshot.
//
// Concepts:
//   - Coverage is the set of sequence numbers the hub no longer needs from
//     an agent: those stored here and those the agent declared dropped in a
//     gap record (hub-protocol.md §4/§5). A batch covering [First, Last]
//     adds the whole range. The end of the covered interval that starts at
//     1 is what the hub acks ("stored through N").
//   - Acked before: a birth carries the highest sequence the agent knows a
//     hub stored (acked_through). If this store does not cover [1, that]
//     (its database was lost or replaced), the range is added to the
//     coverage as stored by an earlier hub and counted, so the hub can ack
//     the agent's later batches again. Sound because an agent deletes
//     records only on a hub's ack (hub-protocol.md §5.3).
//   - Apply writes many batches from many agents in one bbolt transaction,
//     so they share one commit and one fsync (group commit). A record whose
//     sequence is already covered is a duplicate: it is counted and not
//     written again. Nothing in memory changes unless the commit succeeded.
//   - PlanWrite is the decision logic of Apply as a pure function of a
//     Write and the agents' current State; sync/hubpg runs the same logic
//     against states it reads (locked) from PostgreSQL, so both stores
//     give the same Results. Package hubstoretest is the contract suite
//     both pass.
//   - Coverage and counters are kept in memory too (restored by Open), so
//     dedup and the HTTP API never read the file.
//
// Layout of the bbolt file: bucket "agents" holds one bucket per agent id;
// each holds the key "state" (counters and coverage, see encodeState), the
// raw JSON of the latest "status", "birth" and "health", and a sub-bucket
// "records" whose keys are 8-byte big-endian sequence numbers and whose
// values are the records exactly as received (wire.AppendRecord form).
//
// This package is the only hub-side importer of go.etcd.io/bbolt.
package hubstore
