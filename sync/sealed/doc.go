// Package sealed encrypts small values (an ID number, a social security
// number) to the hub's public key, so the agent can put them in a record
// that only the hub can read (DESIGN.md §7, hub-protocol.md §4.4).
//
// It composes the standard library's crypto/hpke (RFC 9180, base mode,
// single shot) with one fixed suite: DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256 and ChaCha20-Poly1305. ChaCha20-Poly1305 rather than
// AES-128-GCM because the kiosks and gates are small ARM boards, many
// without AES instructions, where ChaCha20-Poly1305 is both faster and
// constant-time in software; the hub (x86) pays nothing for it. The HPKE
// info string is "kioskedge/v1/sealed", which binds every sealed value to
// this protocol version and use: a value sealed for anything else does not
// open here.
//
// A sealed value is text: "v1." followed by the unpadded base64url
// encoding of the encapsulated key (32 bytes) and the ciphertext (the
// plaintext plus a 16-byte tag). Sealing is randomised: the same value
// sealed twice gives two different strings.
//
// Key files are PEM blocks of type "KIOSKEDGE SEALED PRIVATE KEY" and
// "KIOSKEDGE SEALED PUBLIC KEY", each holding the 32 raw bytes of the
// X25519 key (RFC 9180 SerializePrivateKey / SerializePublicKey). The
// private key file must not be accessible to group or others.
package sealed
