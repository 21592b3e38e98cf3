package commission

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// MinFreeDisk is the free space below which the disk check fails.
const MinFreeDisk = 256 << 20

// DiskCheck reports the free space of the file system holding dir.
func DiskCheck(dir string) Check {
	// A data dir kioskd has not created yet lives on its parent's file
	// system.
	at := dir
	for {
		if _, err := os.Stat(at); err == nil || filepath.Dir(at) == at {
			break
		}
		at = filepath.Dir(at)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(at, &st); err != nil {
		return failed("disk", dir, fmt.Sprintf("cannot read the file system: %v", err))
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	total := int64(st.Blocks) * int64(st.Bsize)
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(free) / float64(total)
	}
	detail := fmt.Sprintf("%s: %s free of %s (%.0f%%)", dir, bytes(free), bytes(total), pct)
	if free < MinFreeDisk {
		return failed("disk", detail, fmt.Sprintf("less than %s free: the outbox cannot keep records offline; free space or use a larger card", bytes(MinFreeDisk)))
	}
	return pass("disk", "%s", detail)
}

func bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// ReadOutbox opens the outbox file at path (kioskd must be stopped: the file
// is locked while it runs) and returns its state. A missing file is an empty
// outbox and is not created. Errors are the outbox's (a lock held by
// another process shows as a timeout after about 2 s).
func ReadOutbox(path string, now time.Time) (wire.OutboxHealth, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return wire.OutboxHealth{}, nil
	}
	ob, err := outbox.Open(outbox.Options{Path: path, ReclaimAbove: -1})
	if err != nil {
		return wire.OutboxHealth{}, err
	}
	s := ob.Stats()
	if err := ob.Close(); err != nil {
		return wire.OutboxHealth{}, err
	}
	h := wire.OutboxHealth{Depth: s.Depth, DiskBytes: s.FileBytes, BudgetBytes: s.BudgetBytes, NextSeq: s.NextSeq,
		AckedThrough: s.AckedThrough, Evicted: s.Evicted}
	if !s.Oldest.IsZero() {
		h.OldestUnsentS = now.Sub(s.Oldest).Seconds()
	}
	return h, nil
}

// OutboxCheck reports the outbox's backlog; source says where it was read
// ("kioskd" or "file"). Records dropped under the disk budget fail it.
func OutboxCheck(h wire.OutboxHealth, source string) Check {
	detail := fmt.Sprintf("%d %s waiting", h.Depth, plural(h.Depth, "record", "records"))
	if h.Depth > 0 {
		detail += fmt.Sprintf(", oldest unsent %v ago", (time.Duration(h.OldestUnsentS * float64(time.Second))).Round(time.Second))
	}
	detail += fmt.Sprintf("; %d acked by the hub (from %s)", h.AckedThrough, source)
	if h.Evicted > 0 {
		return failed("outbox", detail+fmt.Sprintf("; %d dropped", h.Evicted), "records were dropped under the disk budget: the box was offline too long; check the hub link and outbox.budget")
	}
	return pass("outbox", "%s", detail)
}

// ReadAllowlistVersion returns the version and entry count of the allowlist
// file at path (kioskd must be stopped). A missing file is version 0 and
// is not created.
func ReadAllowlistVersion(path string) (version, entries uint64, err error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	a, err := allowlist.Open(path, allowlist.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		return 0, 0, err
	}
	version, entries = a.Version(), a.Count()
	return version, entries, a.Close()
}

// AllowlistCheck reports a gate's allowlist: version 0 fails, because the
// gate denies every card until the hub's list arrives.
func AllowlistCheck(version, entries uint64, source string) Check {
	if version == 0 {
		return failed("allowlist", "no allowlist yet (version 0, from "+source+")", "the gate denies every card until the hub's list arrives: connect the box and push the list (hubd allowlist push)")
	}
	return pass("allowlist", "version %d, %d entries (from %s)", version, entries, source)
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
