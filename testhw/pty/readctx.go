package pty

import (
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// ReadContext reads from r into p until data arrives, r fails, or ctx
// ends (returning ctx's error). When r supports read deadlines (a Pair's
// Device does), it waits in 50 ms slices so a cancelled ctx is noticed
// without anyone closing r; otherwise it is a plain Read.
func ReadContext(ctx context.Context, r io.Reader, p []byte) (int, error) {
	d, ok := r.(interface{ SetReadDeadline(time.Time) error })
	if !ok {
		return r.Read(p)
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := d.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			return r.Read(p) // deadlines not supported after all
		}
		n, err := r.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
	}
}
