package gpioline

import (
	"os"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// fakeIO behaves like a line request descriptor: events queue as the
// kernel's buffer does, reads block until one is there, deadlines and
// close release them. It records the configurations and values set.
type fakeIO struct {
	mu       sync.Mutex
	pending  []byte
	deadline time.Time
	wake     chan struct{} // closed and replaced on every change
	blocked  chan struct{} // receives when a read is about to block
	closed   bool
	level    gpio.Level
	configs  []lineConfig
	values   []gpio.Level
	ioErr    error // returned by value, setValue and setConfig when set
	readErr  error // returned once by the next read
}

func newFakeIO() *fakeIO {
	return &fakeIO{wake: make(chan struct{}), blocked: make(chan struct{}, 16)}
}

func (f *fakeIO) signal() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// push queues events as the kernel would on edges.
func (f *fakeIO) push(evs ...rawEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range evs {
		f.pending = append(f.pending, encodeEvent(e)...)
	}
	f.signal()
}

func (f *fakeIO) setConfig(c *lineConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ioErr != nil {
		return f.ioErr
	}
	f.configs = append(f.configs, *c)
	if c.flags&flagOutput != 0 {
		f.level = c.attrs[0].attr.value&1 != 0
	}
	return nil
}

func (f *fakeIO) value() (gpio.Level, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.level, f.ioErr
}

func (f *fakeIO) setValue(l gpio.Level) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ioErr != nil {
		return f.ioErr
	}
	f.values = append(f.values, l)
	f.level = l
	return nil
}

func (f *fakeIO) setDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return os.ErrClosed
	}
	f.deadline = t
	f.signal()
	return nil
}

func (f *fakeIO) take(b []byte) int {
	n := min(len(b)/eventSize*eventSize, len(f.pending))
	copy(b, f.pending[:n])
	f.pending = f.pending[n:]
	return n
}

func (f *fakeIO) read(b []byte) (int, error) {
	f.mu.Lock()
	for {
		switch {
		case f.closed:
			f.mu.Unlock()
			return 0, os.ErrClosed
		case f.readErr != nil:
			err := f.readErr
			f.readErr = nil
			f.mu.Unlock()
			return 0, err
		case len(f.pending) > 0:
			n := f.take(b)
			f.mu.Unlock()
			return n, nil
		case !f.deadline.IsZero() && !time.Now().Before(f.deadline):
			f.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		wake := f.wake
		var timeout <-chan time.Time
		if !f.deadline.IsZero() {
			t := time.NewTimer(time.Until(f.deadline))
			defer t.Stop()
			timeout = t.C
		}
		f.mu.Unlock()
		select {
		case f.blocked <- struct{}{}:
		default:
		}
		select {
		case <-wake:
		case <-timeout:
		}
		f.mu.Lock()
	}
}

func (f *fakeIO) drain(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.take(b), nil
}

func (f *fakeIO) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return os.ErrClosed
	}
	f.closed = true
	f.signal()
	return nil
}
