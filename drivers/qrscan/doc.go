// Package qrscan reads a serial QR / barcode scanner and yields each scanned
// code as a credential.Credential of kind QR. The wire format is in
// firmware-specs/qrscan.md.
//
// Concepts:
//
//   - [Framer] is the pure core: bytes and their arrival times in, [Event]s
//     out (a line, an empty line, garbage, an overlong line, a partial line
//     dropped by the inter-character timeout). It does no I/O and has no
//     clock; it is table-tested against firmware-specs/qrscanvectors and
//     fuzzed.
//   - [Scanner] is the thin shell: [Scanner.Run] reads a serialport.Port,
//     feeds the framer, calls Options.OnScan for each valid line, counts
//     dropped lines ([Stats]) and keeps a devstatus health record. [Open]
//     builds one over serialport.OpenReconnecting so a replugged USB scanner
//     comes back by itself.
//   - Scanners are silent when idle. An optional [Probe] (a query the
//     scanner answers) lets the driver tell an idle scanner from a dead one;
//     without it, a scanner is only known dead when its port goes away.
//
// Scanned payloads can carry personal data: this package logs only their
// masked form (the Credential's LogValue) and never the bytes of dropped
// lines, only their length.
package qrscan
