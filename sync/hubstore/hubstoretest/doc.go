// Package hubstoretest is the contract suite every hub store passes: the
// embedded bbolt store (sync/hubstore) and the PostgreSQL store
// (sync/hubpg) run the same Run against their own Factory, so both give
// the same Apply results (duplicates, gap declarations, stale statuses,
// acked-before, acks) and keep the same state across a reopen.
//
// It imports package testing and is meant for tests only.
package hubstoretest
