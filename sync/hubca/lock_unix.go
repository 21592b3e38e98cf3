//go:build unix

package hubca

import (
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive flock on path (created 0600 if missing),
// waiting for another holder, and returns the function that releases it.
func lockDir(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("hubca: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close() // the lock error is the one to report
		return nil, fmt.Errorf("hubca: lock %s: %w", path, err)
	}
	return func() {
		// Closing the file releases the lock; a close error on a lock
		// file we never wrote has nothing to lose.
		_ = f.Close()
	}, nil
}
