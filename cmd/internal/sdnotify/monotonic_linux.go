package sdnotify

import "golang.org/x/sys/unix"

// monotonicUsec reads CLOCK_MONOTONIC in microseconds, as systemd's
// MONOTONIC_USEC expects; 0 if the clock cannot be read.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1e3 // Timespec fields are int32 on 32-bit ARM
}
