// Package synth makes realistic synthetic records for the demo and the
// benchmarks until the device drivers produce real ones: residents of a
// community (each with a fixed keyed-hash credential) swiping at a few
// gates, mostly granted, some denied, with door events and health samples
// mixed in. The standard access record body is the one of
// firmware-specs/hub-protocol.md §4.
//
// A Community is deterministic for a given seed, so runs can be compared.
package synth
