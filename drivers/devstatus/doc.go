// Package devstatus is the health every device driver reports (issue 4
// part 4): connected or not, when the device last answered, error counters
// by kind (framing, checksum, timeout, NAK, …), how often the link was
// re-established, and whether the device is down: a device that fails a
// configured number of consecutive exchanges is marked down, and is up again
// at its next good exchange. Drivers keep probing a down device at their own
// slower cadence.
//
// A Tracker is safe for concurrent use; the agent reads Snapshots while the
// driver's goroutine records. Time is injected.
package devstatus
