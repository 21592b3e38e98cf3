// Package commandvectors holds machine-readable test vectors for signed
// remote commands (firmware-specs/hub-commands.md): a fixed hub key pair, a
// second key that is not the hub's, and an ordered corpus of command
// payloads with the canonical signing bytes of each signed one and the
// result code an agent must give.
//
// The vectors were written by gen/gen_vectors.py from the spec, signing with
// Python's 'cryptography' package, not by the sync/wire encoder, so a test
// that checks the codec against them checks it against the document. The
// private seeds are test keys: they sign nothing but these vectors.
//
// This package has no dependency on the codec it describes.
package commandvectors
