// Package qrscanvectors holds machine-readable test vectors for the QR /
// barcode scanner line protocol (firmware-specs/qrscan.md): framer
// configurations, byte streams with arrival times, and the events a framer
// must report for them.
//
// The vectors were written from the spec, not produced by drivers/qrscan,
// so a test checking the framer against them checks it against the
// document. The driver's tests, the fuzz seeds and testhw/qrscansim use them.
// This package has no dependency on the code it describes.
package qrscanvectors
