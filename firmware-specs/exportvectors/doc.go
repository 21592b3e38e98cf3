// Package exportvectors holds machine-readable test vectors for outbox
// export files (firmware-specs/outbox-export.md): a CA certificate and a
// set of .keo files, each with the verdict a verifier trusting only that
// CA must reach ("ok", or the check that refuses it) and, for accepted
// files, the sequences they hold.
//
// The files were written by gen/gen_vectors.py from the spec, with
// Python's 'cryptography' package and uncompressed batch envelopes, not by
// sync/export, so a test that checks the verifier against them checks it
// against the document. The keys are test keys derived from fixed
// strings: they sign nothing but these vectors.
//
// This package has no dependency on the code it describes.
package exportvectors
