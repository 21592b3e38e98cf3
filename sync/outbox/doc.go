// Package outbox is the agent's durable store-and-forward queue: every
// record is fsynced into one bbolt file before Append returns, gets the
// next per-agent sequence number, and stays until the hub acknowledges it
// end to end (DESIGN.md §5). It is the only agent-side importer of bbolt.
//
// # Appends
//
// Appends are group-committed by one committer goroutine: concurrent
// callers hand their encoded record over a channel, the committer gathers
// a group (up to Options.MaxGroup records, lingering up to Options.Linger
// for a group as large as the previous one) and writes it in one bbolt
// transaction with one commit (two fdatasyncs), then releases every caller.
//
// # File layout
//
//   - Segment buckets: records live in top-level buckets named "s" + the
//     8-byte big-endian segment number, segment = seq / 10,000. Inside, the
//     key is the 8-byte big-endian sequence and the value is the
//     wire.MarshalRecord form (byte 1 is the class). Buckets are filled to
//     100% since keys only grow.
//   - Meta bucket "meta":
//   - "state": version, next sequence, acked-through, lifetime counters of
//     evicted records, gap records and corruptions, CRC-32.
//   - "g" + 8-byte segment number: per class, the count and logical bytes
//     of the segment's live records (not acked, not evicted).
//   - Idempotency index (AppendOnce): buckets "idem" and "idem.tail",
//     logs in time order of packs, one per commit that stored keys:
//     key = the 8-byte big-endian Unix ns the pack was stored + its first
//     sequence (8 bytes big-endian), value = a version byte (0xA2, never
//     a record's) then per key: uvarint key length, key, uvarint
//     (sequence - first sequence), uvarint meta length, meta. Files
//     written before packs may hold single entries in "idem": key =
//     stored-at + the caller's key, value = 0xA1, the 8-byte sequence, the
//     meta; they are read, replayed and pruned like one-key packs. Both
//     buckets are filled to 100%: keys grow with time.
//
// Every transaction that adds or removes records updates these in the same
// transaction, so Open reads only the meta bucket (and the idempotency
// index, bounded by Options.IdemEntries), never the records.
//
// # Idempotency index
//
// AppendOnce looks its key up in the same transaction that would store the
// record (through the same group commit, so a key repeated within a group
// is stored once): a key found younger than Options.IdemTTL stores nothing
// and returns the first sequence and meta; otherwise the record and the
// key's entry are written together, so after a crash either both are
// there or neither. Open loads every key of the index into a map (key →
// time, sequence, pack), so a lookup reads one pack and never searches the
// file; a key found in several packs (stored again after it expired) takes
// the one with the highest sequence. The map takes a committed
// transaction's changes after the commit.
//
// A commit's new keys make one pack, one bbolt Put, written to
// "idem.tail": one leaf page, rewritten by every commit with keys (inline
// in the root's page while under 1 KiB). A commit whose pack would take
// the tail over about 3.5 KiB first moves the tail's packs to "idem", so
// the deep "idem" tree (depth 3 at 100,000 keys) is written only every
// few commits: measured with 18 producers of 16-byte keys, about 1.5
// page writes per commit more than the same appends without keys, where
// one entry per key in "idem" cost 3.
//
// Pruning removes whole packs, oldest first (from either bucket): the
// expired ones, and those beyond Options.IdemEntries keys; a commit that
// goes over the maximum, or that moved the tail, prunes down to the
// maximum minus min(IdemEntries/8, 256) so that an index at its maximum
// is not pruned by every commit. A commit prunes at most 64 keys more
// than it added or moved (rounded up to a whole pack); commits without
// keys do not touch the index. An expired key stays in its pack, ignored,
// until the pack is pruned. The index does not count toward the budget
// and eviction leaves it: a key whose record was evicted (or acked) still
// returns its sequence. The file swap after a drained Ack copies both
// buckets. A damaged file (a malformed index entry counts) replaced by
// Open loses it: only records are salvaged, and the alarm record says the
// file was replaced; keys seen before are then stored again. A version
// before packs opening a file with packs finds it damaged.
//
// # Ack
//
// Ack(n) drops every segment whose whole span is <= n with one
// DeleteBucket, subtracts the acked part of the last segment from its
// counters, and moves the acked-through marker; records <= the marker that
// physically remain in a partly acked segment are never returned and go
// with their bucket later. When an Ack empties the outbox and the file is
// larger than Options.ReclaimAbove, the file is replaced by a fresh one
// written as "<path>.fresh", fsynced, renamed over the old one and the
// directory fsynced; a crash leaves either the old or the new file, both
// complete, and a stale "<path>.fresh" is removed by Open.
//
// # Sequence reservation
//
// "<path>.seq" (magic, reserved-through, CRC-32; replaced by write, fsync,
// rename, directory fsync) is raised in blocks of 100,000 before a commit
// would hand out a sequence beyond it. The meta bucket is authoritative;
// the reservation matters when the meta is lost: a fresh or salvaged file
// starts above it, so sequences never repeat, even after corruption.
//
// # Budget
//
// With Options.BudgetBytes set, a commit that would take the logical size
// (key + value + 16 bytes per record) over the budget first evicts, in the
// same transaction, the oldest live records of the lowest class present
// (health, then event, then critical) until the excess plus 5% of the
// budget is freed, and writes wire.KindGap records (class critical, body
// GapBody) naming exactly the dropped sequences. Gap records may take the
// size a little over the budget. A gap record is itself class critical;
// when one is evicted, its ranges are carried into the new gap records, so
// every dropped sequence stays named by a stored gap record until acked.
//
// # Corruption
//
// If Open finds the file unusable (bbolt refuses it, it is empty or
// truncated, the meta is missing or fails its checks, or reading faults),
// a fresh file is built as "<path>.salvage": the records readable from the
// old file under their original sequences (through bbolt where possible,
// walking each segment under recover(); otherwise by scanning raw leaf
// pages), then a wire.KindOutboxAlarm record (body AlarmBody). Only then is
// the old file renamed to "<path>.corrupt-<UTC time>" and the fresh one
// renamed into place. A crash before the first rename redoes the whole
// replacement at the next Open; a crash between the renames leaves a
// complete "<path>.salvage" that Open installs. Open succeeds, so the
// agent does not crash-loop. Damage met later by Read or a commit is
// returned as ErrCorrupt; closing and reopening repairs it only if Open's
// checks see it.
package outbox
