// Package privacy turns credentials into what may leave the reader: a
// keyed hash, and (for the hub only) the raw number sealed to the hub's
// public key (DESIGN.md §7).
//
// The keyed hash is HMAC-SHA256 keyed with the site key over the domain
// prefix "kioskedge/v1/credential\x00" followed by the credential's
// normalised form (credential.Credential.Normalized: kind, encoding and the
// trimmed, upper-cased number), truncated to its first 16 bytes and
// written as 32 lower-case hex digits (hub-protocol.md §4.3, field cred).
// The allowlist and transaction records use the same function, so a
// record's hash matches the allowlist entry of the same card; without the
// site key the hash cannot be reversed by trying every ID number. The
// prefix keeps these hashes from colliding with any other use of the key.
//
// The site key is 32 random bytes, kept in a file as 64 hex digits
// (whitespace around them ignored) that others may not access. Sealing
// uses sync/sealed (hub-protocol.md §4.4).
package privacy
