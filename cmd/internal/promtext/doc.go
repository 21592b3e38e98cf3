// Package promtext writes the Prometheus text exposition format (version
// 0.0.4): for each metric family a "# HELP" line, a "# TYPE" line and its
// samples, "name{label="value",…} value". Label values escape backslash,
// double quote and newline; HELP text escapes backslash and newline.
//
// The Writer is for kioskd's /metrics: the caller gathers its numbers at
// scrape time (from the outbox's, the uplink's and the devices' own
// counters) and writes them through it, so there is no registry and no
// dependency on the Prometheus client library. Parse reads the format
// back strictly, for tests and tools.
package promtext
