package pty

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	cpty "github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Unplug and Replug after Close.
var ErrClosed = errors.New("pty: pair closed")

// Pair is a pty pair with a symlink to its slave. Its methods are safe for
// concurrent use.
type Pair struct {
	link string

	mu      sync.Mutex
	master  *os.File // device side; kept (closed) after Unplug
	slave   *os.File // held open so the master never sees EIO while the driver reopens
	plugged bool
	closed  bool
}

// New opens a pty pair in raw mode and creates a symlink at linkPath pointing
// to the slave (/dev/pts/N). An existing symlink at linkPath is replaced; any
// other existing file is an error. Errors are prefixed "pty: "; nothing is
// left open or created on error.
func New(linkPath string) (*Pair, error) {
	if linkPath == "" {
		return nil, errors.New("pty: empty link path")
	}
	if fi, err := os.Lstat(linkPath); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return nil, fmt.Errorf("pty: %s exists and is not a symlink", linkPath)
	}
	p := &Pair{link: linkPath}
	if err := p.plug(); err != nil {
		return nil, err
	}
	return p, nil
}

// plug opens a new pair and points the link at it; mu held or not yet shared.
func (p *Pair) plug() error {
	m, s, err := cpty.Open()
	if err != nil {
		return fmt.Errorf("pty: open: %w", err)
	}
	if m, err = pollable(m); err != nil {
		_ = s.Close() // the pollable error is what matters
		return err
	}
	if err := makeRaw(s); err != nil {
		closeBoth(m, s)
		return err
	}
	// Create the link under a temporary name and rename it into place, so the
	// path never points at nothing while it exists.
	tmp := filepath.Join(filepath.Dir(p.link), "."+filepath.Base(p.link)+".tmp")
	_ = os.Remove(tmp) // a leftover from a crashed run, if any
	if err := os.Symlink(s.Name(), tmp); err != nil {
		closeBoth(m, s)
		return fmt.Errorf("pty: symlink: %w", err)
	}
	if err := os.Rename(tmp, p.link); err != nil {
		_ = os.Remove(tmp) // best effort; the rename error is what matters
		closeBoth(m, s)
		return fmt.Errorf("pty: symlink: %w", err)
	}
	p.master, p.slave, p.plugged = m, s, true
	return nil
}

// pollable returns f's descriptor as a non-blocking *os.File that Go's
// runtime poller manages, and closes f. creack/pty hands out a blocking
// master: a Read on it cannot be interrupted by Close, and read deadlines
// do nothing, so a simulator blocked reading it would hang across an
// Unplug. The dup shares the open file description; closing f leaves it
// open through the new descriptor.
func pollable(f *os.File) (*os.File, error) {
	fd, err := unix.Dup(int(f.Fd()))
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			_ = unix.Close(fd) // the SetNonblock error is what matters
		}
	}
	name := f.Name()
	_ = f.Close() // replaced by the dup, or abandoned on error; nobody else has it
	if err != nil {
		return nil, fmt.Errorf("pty: non-blocking master: %w", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

func closeBoth(m, s *os.File) {
	// Error path cleanup of descriptors nobody else has seen.
	_ = s.Close()
	_ = m.Close()
}

// makeRaw sets the slave's termios as cfmakeraw does.
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("pty: raw mode: %w", err)
	}
	var terr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			terr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		terr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err == nil {
		err = terr
	}
	if err != nil {
		return fmt.Errorf("pty: raw mode: %w", err)
	}
	return nil
}

// Path returns the symlink path the driver opens. It is the same across
// Replug.
func (p *Pair) Path() string { return p.link }

// SlavePath returns the /dev/pts/N the symlink currently points to (or last
// pointed to, when unplugged).
func (p *Pair) SlavePath() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.slave.Name()
}

// Device returns the device (simulator) side: the current master. Reads block
// until the driver writes; the value is a pollable *os.File, so deadlines
// work through a type assertion and Unplug or Close ends a blocked Read. After Unplug it returns the closed master (reads
// and writes fail with os.ErrClosed); after Replug, the new master. Closing
// it is like Unplug without removing the symlink.
func (p *Pair) Device() io.ReadWriteCloser {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.master
}

// Plugged reports whether the pair is currently plugged in.
func (p *Pair) Plugged() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.plugged
}

// Unplug removes the symlink and closes the master (and this pair's hold on
// the slave): the driver's reads and writes then fail as with a pulled USB
// adapter, and opening the path fails with "not found". Unplugging an
// unplugged pair does nothing; after Close it returns ErrClosed.
func (p *Pair) Unplug() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return p.unplugLocked()
}

func (p *Pair) unplugLocked() error {
	if !p.plugged {
		return nil
	}
	p.plugged = false
	var errs []error
	if err := os.Remove(p.link); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := p.master.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := p.slave.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pty: unplug: %w", err)
	}
	return nil
}

// Replug makes a new pty pair and points the symlink, at the same path, to
// its slave; Device then returns the new master. A plugged pair is unplugged
// first. After Close it returns ErrClosed; if the new pair cannot be made,
// the pair stays unplugged.
func (p *Pair) Replug() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if err := p.unplugLocked(); err != nil {
		return err
	}
	return p.plug()
}

// Close unplugs the pair for good (closing the master and removing the
// symlink). It is idempotent: later calls return nil.
func (p *Pair) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.unplugLocked()
}
