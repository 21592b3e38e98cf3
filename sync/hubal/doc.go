// Package hubal is the hub's side of allowlist distribution
// (firmware-specs/hub-allowlist.md): a directory of published list
// versions, each kept as the ready-to-send wire messages (the snapshot's
// chunk messages and, when the previous version exists, the delta from it),
// and a Server that answers the agents' requests on
// <root>/v1/+/allowlist/req by publishing, on <root>/v1/<agent>/allowlist,
// the deltas that bring the agent from its version to the latest, or the
// latest snapshot.
//
// It deals in bytes: encoding a list (entries, schedules, chunks) is
// agent/allowlist's, which sync/ must not import; cmd/hubd does it and
// hands the chunks and the delta to Dir.Publish.
//
// # Directory
//
//	DIR/00000000000000000007/info.json      Info, JSON
//	DIR/00000000000000000007/chunk-000000   wire chunk message 0
//	DIR/00000000000000000007/chunk-000001   …
//	DIR/00000000000000000007/delta          wire delta message 6→7 (optional)
//
// A version is written whole into a temporary directory (each file
// fsynced), which is then renamed into place and the parent fsynced: a
// version directory exists complete or not at all. Leftover temporaries
// (".tmp-*", from a crash) are removed by Open.
package hubal
