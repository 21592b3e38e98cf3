package serialport

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.bug.st/serial"
)

// Parity is the parity bit setting. The zero value is NoParity.
type Parity int

// Parity settings.
const (
	NoParity Parity = iota
	OddParity
	EvenParity
	MarkParity
	SpaceParity
)

// StopBits is the number of stop bits. The zero value is OneStopBit.
type StopBits int

// Stop bit settings.
const (
	OneStopBit StopBits = iota
	OnePointFiveStopBits
	TwoStopBits
)

// Mode is a line setting. Zero fields mean the usual defaults: 9600 baud,
// 8 data bits, no parity, one stop bit.
type Mode struct {
	BaudRate int      // bits per second; 0 means 9600
	DataBits int      // 5, 6, 7 or 8; 0 means 8
	Parity   Parity   // zero value NoParity
	StopBits StopBits // zero value OneStopBit
}

func (m Mode) toSerial() (serial.Mode, error) {
	var sm serial.Mode
	if m.BaudRate < 0 {
		return sm, errors.New("negative baud rate")
	}
	switch m.DataBits {
	case 0, 5, 6, 7, 8:
	default:
		return sm, errors.New("data bits must be 5, 6, 7 or 8")
	}
	sm.BaudRate, sm.DataBits = m.BaudRate, m.DataBits
	switch m.Parity {
	case NoParity:
		sm.Parity = serial.NoParity
	case OddParity:
		sm.Parity = serial.OddParity
	case EvenParity:
		sm.Parity = serial.EvenParity
	case MarkParity:
		sm.Parity = serial.MarkParity
	case SpaceParity:
		sm.Parity = serial.SpaceParity
	default:
		return sm, errors.New("unknown parity")
	}
	switch m.StopBits {
	case OneStopBit:
		sm.StopBits = serial.OneStopBit
	case OnePointFiveStopBits:
		sm.StopBits = serial.OnePointFiveStopBits
	case TwoStopBits:
		sm.StopBits = serial.TwoStopBits
	default:
		return sm, errors.New("unknown stop bits")
	}
	return sm, nil
}

// Port is a serial link. It is implemented by the value [Open] returns, by
// [*Reconnecting], and by test fakes; drivers and simulators take a Port.
//
// Read and Write may be called from different goroutines; Close may be called
// from any goroutine and unblocks a pending Read.
type Port interface {
	// Read reads what is available, blocking up to the read timeout. When the
	// timeout elapses with no data it returns (0, *Error{Code: Timeout}). A
	// device that went away yields Code Disconnected, a closed Port Code Closed.
	Read(p []byte) (int, error)
	// Write writes all of p or returns an error (Disconnected, Closed, Other).
	Write(p []byte) (int, error)
	// SetReadTimeout sets how long Read waits for the first byte; 0 means
	// wait without limit (until data, an error or Close). Negative values are
	// Code Invalid. It takes effect from the next Read.
	SetReadTimeout(d time.Duration) error
	// ResetInputBuffer discards bytes received but not yet read.
	ResetInputBuffer() error
	// Close releases the port and unblocks a pending Read (which returns Code
	// Closed). It waits for a Write in progress, which lasts only as long as
	// the device takes the bytes. It is idempotent: later calls return nil.
	// Read and Write after Close return Code Closed.
	Close() error
}

// Open opens the serial device at path (following symlinks) with mode, in raw
// mode with no flow control, and takes an advisory exclusive lock (flock) on
// the device so a second Open of the same device, from this or another
// process, fails with Code Busy. The read timeout starts at 0 (no limit).
//
// Errors are *Error with Op "open": NotFound (no such path or device), Busy
// (locked or TIOCEXCL), Permission, Invalid (empty path, bad mode, not a tty),
// Other.
func Open(path string, mode Mode) (Port, error) {
	if path == "" {
		return nil, &Error{Code: Invalid, Op: "open", Err: errors.New("empty path")}
	}
	sm, err := mode.toSerial()
	if err != nil {
		return nil, &Error{Code: Invalid, Path: path, Op: "open", Err: err}
	}
	lk, err := lockDevice(path)
	if err != nil {
		return nil, &Error{Code: openCode(err), Path: path, Op: "open", Err: err}
	}
	sp, err := serial.Open(path, &sm)
	if err != nil {
		lk.release()
		return nil, &Error{Code: openCode(err), Path: path, Op: "open", Err: err}
	}
	return &port{path: path, sp: sp, lk: lk}, nil
}

// port adapts a go.bug.st/serial port to Port.
type port struct {
	path string
	sp   serial.Port
	lk   deviceLock

	timeout atomic.Int64 // wanted read timeout; 0 = none

	// readMu serialises Reads: go.bug.st/serial keeps the read timeout in an
	// unguarded field, so it is only applied by the reading goroutine.
	readMu  sync.Mutex
	applied time.Duration // read timeout applied to sp; guarded by readMu

	// fdMu keeps Close from closing the descriptor under a Write or
	// ResetInputBuffer (the library does not guard them, and a reused
	// descriptor number would be written to otherwise).
	fdMu      sync.RWMutex
	closed    atomic.Bool
	closeOnce sync.Once
}

func (p *port) err(op string, c Code, cause error) error {
	return &Error{Code: c, Path: p.path, Op: op, Err: cause}
}

func (p *port) Read(b []byte) (int, error) {
	if p.closed.Load() {
		return 0, p.err("read", Closed, nil)
	}
	if len(b) == 0 {
		return 0, nil
	}
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if t := time.Duration(p.timeout.Load()); t != p.applied {
		lt := t
		if t == 0 {
			lt = serial.NoTimeout
		}
		if err := p.sp.SetReadTimeout(lt); err != nil {
			return 0, p.err("read", Invalid, err)
		}
		p.applied = t
	}
	n, err := p.sp.Read(b)
	if err != nil {
		if p.closed.Load() {
			return n, p.err("read", Closed, err)
		}
		return n, p.err("read", ioCode(err), err)
	}
	if n == 0 {
		return 0, p.err("read", Timeout, nil)
	}
	return n, nil
}

func (p *port) Write(b []byte) (int, error) {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.closed.Load() {
		return 0, p.err("write", Closed, nil)
	}
	done := 0
	for done < len(b) {
		n, err := p.sp.Write(b[done:])
		done += n
		if err != nil {
			return done, p.err("write", ioCode(err), err)
		}
		if n == 0 {
			return done, p.err("write", Disconnected, io.ErrShortWrite)
		}
	}
	return done, nil
}

func (p *port) SetReadTimeout(d time.Duration) error {
	if d < 0 {
		return p.err("set read timeout", Invalid, errors.New("negative timeout"))
	}
	if p.closed.Load() {
		return p.err("set read timeout", Closed, nil)
	}
	p.timeout.Store(int64(d))
	return nil
}

func (p *port) ResetInputBuffer() error {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.closed.Load() {
		return p.err("reset input", Closed, nil)
	}
	if err := p.sp.ResetInputBuffer(); err != nil {
		return p.err("reset input", ioCode(err), err)
	}
	return nil
}

func (p *port) Close() error {
	var cerr error
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		// Waits for in-flight Writes; the library's Close wakes a pending Read
		// through its signal pipe and waits for it to return.
		p.fdMu.Lock()
		err := p.sp.Close()
		p.fdMu.Unlock()
		p.lk.release()
		if err != nil {
			cerr = p.err("close", Other, err)
		}
	})
	return cerr // later calls: nil
}

// openCode maps an open failure to a Code.
func openCode(err error) Code {
	var pe *serial.PortError
	if errors.As(err, &pe) {
		return portErrorCode(pe.Code(), true)
	}
	var pv serial.PortError
	if errors.As(err, &pv) {
		return portErrorCode(pv.Code(), true)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT, syscall.ENODEV, syscall.ENXIO:
			return NotFound
		case syscall.EBUSY, syscall.EWOULDBLOCK:
			return Busy
		case syscall.EACCES, syscall.EPERM:
			return Permission
		case syscall.ENOTTY, syscall.EISDIR, syscall.EINVAL, syscall.ENOTDIR, syscall.ENAMETOOLONG, syscall.ELOOP:
			return Invalid
		}
	}
	return Other
}

// ioCode maps a Read/Write failure on an open port (not closed by its owner)
// to a Code: almost everything there means the device went away.
func ioCode(err error) Code {
	if errors.Is(err, io.EOF) {
		return Disconnected
	}
	var pe *serial.PortError
	if errors.As(err, &pe) {
		return portErrorCode(pe.Code(), false)
	}
	var pv serial.PortError
	if errors.As(err, &pv) {
		return portErrorCode(pv.Code(), false)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EIO, syscall.ENXIO, syscall.ENODEV, syscall.EPIPE, syscall.EBADF, syscall.ENOENT, syscall.ESHUTDOWN, syscall.EHOSTDOWN:
			return Disconnected
		case syscall.EINVAL:
			return Invalid
		}
	}
	return Other
}

func portErrorCode(c serial.PortErrorCode, opening bool) Code {
	switch c {
	case serial.PortBusy:
		return Busy
	case serial.PortNotFound:
		return NotFound
	case serial.PermissionDenied:
		return Permission
	case serial.InvalidSerialPort, serial.InvalidSpeed, serial.InvalidDataBits,
		serial.InvalidParity, serial.InvalidStopBits, serial.InvalidTimeoutValue:
		if !opening && c == serial.InvalidSerialPort {
			return Disconnected
		}
		return Invalid
	case serial.PortClosed:
		// Not closed by the owner (checked by the caller): on Linux the
		// library reports a hung-up device (zero-length read) this way.
		return Disconnected
	}
	return Other
}
