package hubalert

import (
	"errors"
	"fmt"
	"os"

	"github.com/kioskedge/kioskedge/sync/internal/atomicfile"
)

// StateStore keeps the service's state (one JSON document: every key's
// episode and evidence, the agents' bdseq and labels, the history)
// across restarts and, when it is shared, across hub instances. The
// service calls it from one goroutine at a time.
type StateStore interface {
	// Load returns the last saved document, or nil and no error when none
	// was ever saved.
	Load() ([]byte, error)
	// Save replaces the saved document. An error leaves the service's
	// state dirty: it is counted (Stats.SaveError), logged and saved
	// again at the next tick.
	Save(doc []byte) error
}

// FileState is the StateStore of Rules.StateFile: the document in one
// file at this path, replaced by an atomic rewrite (temp file, fsync,
// rename, fsync of the directory).
type FileState string

// Load reads the file; a missing file is no state (nil, nil).
func (f FileState) Load() ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hubalert: state file: %w", err)
	}
	return b, nil
}

// Save rewrites the file atomically, mode 0600.
func (f FileState) Save(doc []byte) error {
	if err := atomicfile.Replace(string(f), doc, 0o600); err != nil {
		return fmt.Errorf("hubalert: state file: %w", err)
	}
	return nil
}
