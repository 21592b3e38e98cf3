package serialport_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/testhw/pty"
)

// wait bounds every blocking step of these tests; it is generous on purpose
// (a loaded CI box), and never a speed assertion.
const wait = 10 * time.Second

func newPair(t *testing.T) *pty.Pair {
	t.Helper()
	p, err := pty.New(filepath.Join(t.TempDir(), "ttyTEST"))
	if err != nil {
		t.Fatalf("pty.New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// readFull reads len(want) bytes from r (a Port) within wait, skipping timeouts.
func readFull(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 0, n)
	tmp := make([]byte, n)
	for len(buf) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes before giving up: %q", len(buf), n, buf)
		}
		k, err := r.Read(tmp[:n-len(buf)])
		buf = append(buf, tmp[:k]...)
		if err != nil && !serialport.IsTimeout(err) {
			t.Fatalf("read after %q: %v", buf, err)
		}
	}
	return buf
}

// goroutinesSettle waits for the goroutine count to drop to at most n.
func goroutinesSettle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		g := runtime.NumGoroutine()
		if g <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutine leak: %d before, %d after\n%s", n, g, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenExchangesBytesBothWays(t *testing.T) {
	pair := newPair(t)
	port, err := serialport.Open(pair.Path(), serialport.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer port.Close()
	if err := port.SetReadTimeout(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}

	// Every byte value, including CR, LF, XON/XOFF, ^C and ^D, must pass untouched.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if n, err := port.Write(all); err != nil || n != len(all) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := readFull(t, pair.Device(), len(all))
	if !bytes.Equal(got, all) {
		t.Fatalf("device got %x, want %x", got, all)
	}

	if _, err := pair.Device().Write(all); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, port, len(all)); !bytes.Equal(got, all) {
		t.Fatalf("port got %x, want %x", got, all)
	}
}

func TestReadTimeoutIsTyped(t *testing.T) {
	pair := newPair(t)
	port, err := serialport.Open(pair.Path(), serialport.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	if err := port.SetReadTimeout(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	n, err := port.Read(make([]byte, 8))
	if n != 0 || !serialport.IsTimeout(err) {
		t.Fatalf("Read = %d, %v; want 0, Timeout", n, err)
	}
	var se *serialport.Error
	if !errors.As(err, &se) || se.Path != pair.Path() || se.Op != "read" {
		t.Fatalf("error %#v lacks path or op", err)
	}
	if err := port.SetReadTimeout(-time.Second); !serialport.Is(err, serialport.Invalid) {
		t.Fatalf("negative timeout: %v, want Invalid", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	before := runtime.NumGoroutine()
	pair := newPair(t)
	port, err := serialport.Open(pair.Path(), serialport.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	// No read timeout: the Read blocks until Close.
	done := make(chan error, 1)
	go func() {
		_, err := port.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the Read block; correctness does not depend on it
	if err := port.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !serialport.IsClosed(err) {
			t.Fatalf("blocked Read returned %v, want Closed", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not unblock Read")
	}
	if err := port.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := port.Read(make([]byte, 1)); !serialport.IsClosed(err) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := port.Write([]byte{1}); !serialport.IsClosed(err) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := port.ResetInputBuffer(); !serialport.IsClosed(err) {
		t.Fatalf("ResetInputBuffer after Close: %v", err)
	}
	_ = pair.Close()
	goroutinesSettle(t, before)
}

func TestOpenErrorsAreTyped(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("not a tty"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		mode serialport.Mode
		want serialport.Code
	}{
		{"missing", filepath.Join(dir, "nope"), serialport.Mode{}, serialport.NotFound},
		{"regular file", plain, serialport.Mode{}, serialport.Invalid},
		{"directory", dir, serialport.Mode{}, serialport.Invalid},
		{"empty path", "", serialport.Mode{}, serialport.Invalid},
		{"bad data bits", plain, serialport.Mode{DataBits: 9}, serialport.Invalid},
		{"bad parity", plain, serialport.Mode{Parity: 42}, serialport.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := serialport.Open(tc.path, tc.mode)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			if c, ok := serialport.CodeOf(err); !ok || c != tc.want {
				t.Fatalf("Open error %v: code %v, want %v", err, c, tc.want)
			}
		})
	}
}

func TestOpenTwiceIsBusy(t *testing.T) {
	pair := newPair(t)
	a, err := serialport.Open(pair.Path(), serialport.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := serialport.Open(pair.Path(), serialport.Mode{}); !serialport.Is(err, serialport.Busy) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("second Open: %v, want Busy", err)
	}
	a.Close()
	b, err := serialport.Open(pair.Path(), serialport.Mode{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	b.Close()
}

func TestUnplugIsDisconnected(t *testing.T) {
	pair := newPair(t)
	port, err := serialport.Open(pair.Path(), serialport.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	if err := port.SetReadTimeout(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := pair.Unplug(); err != nil {
		t.Fatal(err)
	}
	if _, err := port.Read(make([]byte, 4)); !serialport.IsDisconnected(err) {
		t.Fatalf("Read after unplug: %v, want Disconnected", err)
	}
	if _, err := port.Write([]byte("x")); !serialport.IsDisconnected(err) {
		t.Fatalf("Write after unplug: %v, want Disconnected", err)
	}
	if _, err := serialport.Open(pair.Path(), serialport.Mode{}); !serialport.IsNotFound(err) {
		t.Fatalf("Open after unplug: %v, want NotFound", err)
	}
}

func TestListDoesNotFail(t *testing.T) {
	ports, err := serialport.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, p := range ports {
		if p.Path == "" {
			t.Errorf("port with empty path: %+v", p)
		}
	}
	t.Logf("%d ports", len(ports))
}
