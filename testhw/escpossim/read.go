package escpossim

import (
	"context"
	"errors"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// readCtx reads from rw. When rw is a file, it first waits in poll(2) 50 ms
// at a time, so ctx ending and the file being closed are noticed even when
// the descriptor is in blocking mode (a pty master whose Fd was taken is):
// a blocking read(2) is not interrupted by Close.
func readCtx(ctx context.Context, rw io.Reader, buf []byte) (int, error) {
	sc, ok := rw.(syscall.Conn)
	if !ok {
		return rw.Read(buf)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return rw.Read(buf)
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		var ready bool
		var perr error
		if err := rc.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 50)
			ready, perr = n > 0, err
		}); err != nil {
			return 0, err // closed
		}
		if perr != nil && !errors.Is(perr, unix.EINTR) {
			return 0, perr
		}
		if ready {
			return rw.Read(buf)
		}
	}
}
