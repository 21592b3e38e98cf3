package allowlist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// Reset says that OpenOrReset found the allowlist file unreadable and
// started an empty one.
type Reset struct {
	MovedTo string // where the unreadable file was moved
	Err     error  // why it could not be opened
}

// OpenOrReset opens the allowlist like Open; when the file is there but
// cannot be read as an allowlist (not a bbolt file, damaged pages or meta,
// a panic inside bbolt), it moves the file aside to
// path+".corrupt-<unix seconds>", opens a fresh empty list (version 0, so
// the gate asks the hub for a snapshot and, meanwhile, denies all but free
// passage) and reports what it did in Reset. A file that is locked by
// another process or that the agent may not open is not reset: that error
// is returned, since moving the file would not fix it. DESIGN.md §5: a
// corrupt file never crash-loops the agent.
func OpenOrReset(path string, opts Options) (*Allowlist, *Reset, error) {
	a, err := openRecovering(path, opts)
	if err == nil {
		return a, nil, nil
	}
	if errors.Is(err, berrors.ErrTimeout) || errors.Is(err, fs.ErrPermission) {
		return nil, nil, err
	}
	if _, statErr := os.Stat(path); statErr != nil {
		return nil, nil, err // nothing to move aside: the error is not the file's content
	}
	moved := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
	if rerr := os.Rename(path, moved); rerr != nil {
		return nil, nil, errors.Join(err, fmt.Errorf("allowlist: moving the unreadable file aside: %w", rerr))
	}
	a, err2 := openRecovering(path, opts)
	if err2 != nil {
		return nil, nil, errors.Join(err, err2)
	}
	return a, &Reset{MovedTo: moved, Err: err}, nil
}

// openRecovering is Open turning a panic inside bbolt (some damaged pages
// make it panic rather than fail) into an error wrapping ErrCorrupt.
func openRecovering(path string, opts Options) (a *Allowlist, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, err = nil, fmt.Errorf("%w: bbolt panicked opening %s: %v", ErrCorrupt, path, r)
		}
	}()
	return Open(path, opts)
}
