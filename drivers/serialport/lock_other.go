//go:build !unix

package serialport

// deviceLock is a no-op where flock is unavailable; go.bug.st/serial's own
// exclusivity applies.
type deviceLock struct{}

func lockDevice(string) (deviceLock, error) { return deviceLock{}, nil }

func (deviceLock) release() {}
