//go:build unix

package serialport

import "golang.org/x/sys/unix"

// deviceLock holds a flock on the device node through its own descriptor,
// opened before go.bug.st/serial sets TIOCEXCL (which root ignores).
type deviceLock struct{ fd int }

func lockDevice(path string) (deviceLock, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return deviceLock{fd: -1}, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		// The lock error is what matters; closing a descriptor we only
		// opened to lock cannot lose data.
		_ = unix.Close(fd)
		return deviceLock{fd: -1}, err
	}
	return deviceLock{fd: fd}, nil
}

func (l deviceLock) release() {
	if l.fd >= 0 {
		// Closing drops the flock; there is nothing to flush.
		_ = unix.Close(l.fd)
	}
}
