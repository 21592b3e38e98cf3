// Package osdpvectors holds the OSDP test vectors of firmware-specs/osdp.md
// as embedded JSON: CRC-16 and checksum examples, encoded packets with their
// decoded fields, malformed packets with the error a decoder must report,
// SCBK derivation from a master key, and whole secure-channel sessions
// (session keys, cryptograms, initial R-MAC, then MAC-chained and encrypted
// packets in order).
//
// The vectors were computed by gen/gen_vectors.py, an independent Python
// implementation written from the spec with another AES library, so the
// driver (drivers/osdp) and the simulator (testhw/osdpsim) are checked
// against a third party rather than against each other. Regenerate with
//
//	python3 firmware-specs/osdpvectors/gen/gen_vectors.py > firmware-specs/osdpvectors/vectors.json
package osdpvectors
