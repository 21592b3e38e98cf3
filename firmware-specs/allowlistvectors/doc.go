// Package allowlistvectors holds the allowlist test vectors of
// firmware-specs/allowlist.md as embedded JSON: entry value encodings with
// their fields, schedule encodings, a two-chunk snapshot with its SHA-256,
// and malformed entries and chunks a decoder must reject.
//
// The vectors were computed by gen/gen_vectors.py, written from the spec
// independently of agent/allowlist. Regenerate with
//
//	python3 firmware-specs/allowlistvectors/gen/gen_vectors.py > firmware-specs/allowlistvectors/vectors.json
package allowlistvectors
