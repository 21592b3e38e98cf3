// Package allowlist is the gate's local allowlist store: who may open
// which doors, by keyed credential hash, in its own bbolt file (DESIGN.md
// §5, §7). It is the only agent-side importer of bbolt besides the outbox;
// evaluating an entry (validity, schedule, door groups, lockdown,
// anti-passback) is the decision engine's job.
//
// # Entries and schedules
//
// An Entry is keyed by the 16 bytes of privacy.KeyedHash (HMAC-SHA256 over
// the normalised credential under the site key, truncated); raw credential
// numbers are never stored. It carries validity from/to, door groups, a
// schedule id, a staff flag (lockdown) and an optional anti-passback group.
// A Schedule is weekly windows plus holiday dates. Both have a compact
// binary encoding, specified with the chunk format in
// firmware-specs/allowlist.md, vectors in firmware-specs/allowlistvectors.
//
// # File layout
//
//   - "meta" bucket, key "state": version, entry count and the live
//     generation number, 8 bytes big-endian each.
//   - "g" + 8-byte generation: one whole list, with nested buckets "e"
//     (key → entry value encoding) and "s" (4-byte big-endian schedule id →
//     schedule encoding).
//
// Lookup opens a read transaction, reads the live generation from the
// meta and gets the key: a few page reads through the mmap, no lock shared
// with writers.
//
// # Snapshots
//
// BeginSnapshot creates generation live+1 as a staging area; each PutChunk
// decodes one chunk and writes its records there in one transaction
// (entries come in ascending key order across the whole snapshot, so the
// staged bucket is appended to and filled to 100%). CommitSnapshot checks
// the chunk count and the SHA-256 of the concatenated chunks, then swaps
// the live generation in the meta in one transaction; the old generation is
// deleted afterwards. Readers see the old list until the swap commits. A
// snapshot abandoned, refused or cut by a crash leaves only a staged
// generation, which the next BeginSnapshot, AbortSnapshot or Open drops.
//
// # Deltas
//
// ApplyDelta applies upserts and deletes to the live generation in one
// transaction, only from the current version; a gap is ErrVersionGap, an
// old delta ErrStale.
package allowlist
