package gpioline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
)

func openLine(spec Spec, opts Options) (*Line, error) {
	chips, err := discover()
	if err != nil {
		return nil, err
	}
	if strings.Contains(spec.Chip, "/") {
		// "/dev/gpiochip4" may be a symlink to gpiochip0 (Raspberry Pi 5).
		if p, err := filepath.EvalSymlinks(spec.Chip); err == nil {
			spec.Chip = p
		}
	}
	t, err := resolve(spec, chips)
	if err != nil {
		return nil, err
	}
	fd, err := requestLine(t, opts)
	if err != nil {
		return nil, err
	}
	io, err := newFDLine(fd, t)
	if err != nil {
		return nil, err
	}
	base, err := measureTimebase(time.Now, monotonicNow)
	if err != nil {
		_ = io.close() // the timebase error is the one to report
		return nil, fmt.Errorf("gpioline: %s: reading CLOCK_MONOTONIC: %w", t, err)
	}
	return newLine(t, opts, io, base), nil
}

// requestLine asks the chip for the line, as it is (no direction, no
// edge detection: In and Out configure it), and returns the request's
// file descriptor.
func requestLine(t target, opts Options) (int, error) {
	cfd, err := unix.Open(t.Chip.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, openError(t.Chip.Path, err)
	}
	defer unix.Close(cfd) // read-only, nothing to flush; the request outlives it
	var req lineRequest
	req.offsets[0] = uint32(t.Offset)
	req.numLines = 1
	req.eventBufferSize = uint32(opts.EventBuffer)
	copy(req.consumer[:gpioMaxNameSize-1], opts.Consumer)
	if err := ioctl(cfd, ioctlGetLine, unsafe.Pointer(&req)); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return -1, fmt.Errorf("%w: %s is held by %s: stop that program or driver, or wire another line (gpioinfo shows who holds what)", ErrBusy, t, holder(cfd, t.Offset))
		}
		return -1, fmt.Errorf("gpioline: requesting %s from %s: %w", t, t.Chip.Path, err)
	}
	return int(req.fd), nil
}

// holder names the consumer of a line for an EBUSY message.
func holder(cfd, offset int) string {
	var info lineInfo
	info.offset = uint32(offset)
	if err := ioctl(cfd, ioctlGetLineInfo, unsafe.Pointer(&info)); err != nil {
		return "another consumer"
	}
	name := cString(info.consumer[:])
	if name == "" {
		return "another consumer"
	}
	return strconv.Quote(name)
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return &multiError{
			msg:  fmt.Sprintf("%v: cannot open %s (%v): %s", ErrPermission, path, err, permissionHint),
			errs: []error{ErrPermission, err},
		}
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%w: %s has gone (%w)", ErrNotFound, path, err)
	}
	return fmt.Errorf("gpioline: opening %s: %w", path, err)
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

func monotonicNow() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return ts.Nano(), nil
}

// fdLine is a line request file descriptor in Go's poller, so a blocked
// read costs no thread and honours deadlines; ioctls run through
// RawConn.Control, which keeps the descriptor from being closed under
// them.
type fdLine struct {
	f  *os.File
	rc syscall.RawConn
}

func newFDLine(fd int, t target) (*fdLine, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd) // the SetNonblock error is the one to report
		return nil, fmt.Errorf("gpioline: %s: %w", t, err)
	}
	f := os.NewFile(uintptr(fd), t.String())
	rc, err := f.SyscallConn()
	if err == nil {
		err = f.SetReadDeadline(time.Time{}) // fails if the poller refused the descriptor
	}
	if err != nil {
		_ = f.Close() // the setup error is the one to report
		return nil, fmt.Errorf("gpioline: %s: line request is not pollable: %w", t, err)
	}
	return &fdLine{f: f, rc: rc}, nil
}

func (l *fdLine) control(fn func(fd int) error) error {
	var ferr error
	if err := l.rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (l *fdLine) setConfig(c *lineConfig) error {
	return l.control(func(fd int) error { return ioctl(fd, ioctlLineSetConfig, unsafe.Pointer(c)) })
}

func (l *fdLine) value() (gpio.Level, error) {
	v := lineValues{mask: 1}
	err := l.control(func(fd int) error { return ioctl(fd, ioctlLineGetValues, unsafe.Pointer(&v)) })
	return gpio.Level(v.bits&1 != 0), err
}

func (l *fdLine) setValue(lv gpio.Level) error {
	v := lineValues{bits: levelBits(lv), mask: 1}
	return l.control(func(fd int) error { return ioctl(fd, ioctlLineSetValues, unsafe.Pointer(&v)) })
}

func (l *fdLine) setDeadline(t time.Time) error { return l.f.SetReadDeadline(t) }

func (l *fdLine) read(b []byte) (int, error) { return l.f.Read(b) }

func (l *fdLine) drain(b []byte) (int, error) {
	var n int
	err := l.control(func(fd int) error {
		var err error
		n, err = unix.Read(fd, b)
		if errors.Is(err, unix.EAGAIN) {
			n, err = 0, nil
		}
		return err
	})
	return max(n, 0), err
}

func (l *fdLine) close() error { return l.f.Close() }
