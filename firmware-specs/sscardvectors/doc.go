// Package sscardvectors embeds the test vectors of the social security card
// reader protocol (firmware-specs/sscard.md §3): reader-transport frames
// (valid and malformed, with the bytes a receiver drops), command APDUs,
// response APDUs with their status-word mapping, TLV records, and the
// records of a fake card with its decoded fields.
//
// Both the driver's tests (drivers/sscard) and the simulator
// (testhw/sscardsim) read them, so the two independent implementations are
// held to the same bytes. The values were computed by hand from the spec,
// not by either implementation. The people in them are fake: region code
// 990000 does not exist.
package sscardvectors
