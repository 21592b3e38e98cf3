// Package certs generates a throw-away PKI for TLS tests: a CA, a server
// certificate for the loopback addresses, a client certificate the CA
// signed, and a second, unrelated CA with a client certificate of its own
// (the "foreign" client a broker must refuse, and the wrong trust anchor a
// client must not accept the server with).
//
// Keys are ECDSA P-256; everything is written as PEM files with
// crypto/x509 alone (no openssl binary). The certificates are valid from
// an hour ago for a day, which is enough for any test run. Like everything
// under testhw, this package is never linked into kioskd.
package certs
