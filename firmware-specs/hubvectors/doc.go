// Package hubvectors holds machine-readable test vectors for the hub
// protocol (firmware-specs/hub-protocol.md): stored records (§4) and event
// batch envelopes (§5), valid and malformed.
//
// The vectors were composed field by field from the spec, not produced by
// the sync/wire encoder, so a test that checks the codec against them checks
// the codec against the document. The hub side, simulators and fuzz targets
// use them as seeds.
//
// Every byte string is hex; spaces may separate fields for readability and
// are not part of the data. Each malformed vector names the class of error
// a decoder must report (see the Err* constants), never a message text.
//
// This package has no dependency on the codec it describes.
package hubvectors
