// Package hubpg is the hub's PostgreSQL store: the same records, agent
// state and Apply results as sync/hubstore's embedded bbolt store, in a
// database several hubd processes share (hubd serve -db postgres://…,
// firmware-specs/hub-protocol.md §13).
//
// Schema (created by Open when missing):
//
//	records(agent text, seq bigint, raw bytea, PRIMARY KEY (agent, seq))
//	agents(agent text PRIMARY KEY, received, duplicates, declared,
//	       acked_before, contiguous, highest bigint, coverage bytea,
//	       has_status, online boolean, bdseq bigint,
//	       status, birth, health bytea)
//
// records holds every record exactly as received (wire.AppendRecord form);
// the primary key is the unique (agent, sequence) key. agents holds what
// hubstore keeps per agent (hubstore.State): counters, the coverage
// (hubstore.Coverage.AppendEncoded; contiguous and highest are derived
// copies for SQL readers), the latest accepted status's BdSeq and the raw
// JSON of the latest status, birth and health.
//
// Several processes, one database: Apply runs in one transaction that
// locks the write's agent rows in sorted id order (INSERT … ON CONFLICT
// DO NOTHING, then SELECT … ORDER BY agent FOR UPDATE), reads their state
// from the database, decides with hubstore.PlanWrite (the bbolt store's
// own logic), COPYs the new records into records and updates the rows in
// one statement. Nothing is decided from memory, so when
// hub A stores an agent's batch 2 after hub B stored batch 1, A's
// Result.Acks already include batch 1: every hub's ack is the agent's
// contiguous coverage as committed. A deadlock or serialization failure
// is retried. A record whose key exists already (impossible while every
// writer goes through Apply, since the coverage covers every stored
// record) fails the COPY; the transaction is then redone with INSERT …
// ON CONFLICT (agent, seq) DO NOTHING RETURNING and the record counted as
// a duplicate. COPY was the fastest of three ways measured: COPY, one
// INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING (kept in
// BenchmarkApply for comparison, about half the rate), and COPY into a
// temp table then INSERT … SELECT ON CONFLICT (slowest, dropped).
//
// Reads (AgentState, Agents, ForEach, Get) query the database each time;
// there is no cache, so a hub sees what the other hubs committed.
//
// Several hubs also need one of them to do what must happen once: Leader
// holds a session-level advisory lock (pg_try_advisory_lock) on a
// dedicated connection, so exactly one process leads until its session
// ends (a SIGKILLed hub's connection closes and another takes over); each
// election bumps a term in hub_leader. AlertState keeps sync/hubalert's
// state as one row of hub_alert_state, its saves fenced by the leader's
// term (ErrFenced), and carries committed record ranges from followers to
// the leader with NOTIFY/LISTEN (firmware-specs/hub-alerts.md).
//
// Sequences are stored as bigint: Apply rejects sequences above 2^63-1
// with hubstore.ErrInvalid. This package is the only importer of pgx.
package hubpg
