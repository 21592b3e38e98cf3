// Package export writes and verifies outbox export files (".keo"): the
// unacked records of a box that has been offline for a long time, carried
// to the hub on a USB stick (kioskctl outbox export, hubd import). The
// format is specified in firmware-specs/outbox-export.md; code comments
// point to its sections.
//
// A file is a header (agent, sequence range, record count), the records
// as event batches in the exact envelope the uplink publishes over MQTT
// (wire.Codec, hub-protocol.md §5), the box's certificate chain, a
// signature by the box's TLS client key over a SHA-256 of everything
// before it, and a SHA-256 checksum of the whole file.
//
// Concepts:
//   - Writer streams a file: NewWriter writes the header, WriteBatch one
//     batch at a time, Finish signs it. The header's range and count are
//     promised up front and Finish refuses a file that does not keep them.
//   - Open verifies a file completely before anything is imported, in
//     this order: the checksum (a damaged or truncated copy), the
//     structure and sequences (batches contiguous, records strictly
//     increasing inside the header's range, the count), the signature, the
//     chain to the trusted CA, and the certificate's CN against the
//     header's agent. File.Batches then reads the batches again, each
//     checked against the digest taken while verifying, so a file changed
//     between the two reads is refused rather than half trusted.
//   - An export never deletes anything from the box's outbox. The records
//     stay until the hub's ack arrives over MQTT: the box resends them,
//     the hub that imported them drops every one as a duplicate by
//     sequence and acks. This is what makes the USB path
//     safe: a lost or refused stick costs nothing.
package export
