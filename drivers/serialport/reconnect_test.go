package serialport_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/testhw/pty"
)

// stateLog records OnState calls.
type stateLog struct {
	mu sync.Mutex
	s  []bool
}

func (l *stateLog) on(up bool) { l.mu.Lock(); l.s = append(l.s, up); l.mu.Unlock() }
func (l *stateLog) get() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.s...)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// readUntil reads from r until it has n bytes, tolerating timeouts and
// Disconnected errors (the device may be coming back), within wait.
func readUntil(t *testing.T, r serialport.Port, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(wait)
	var buf []byte
	tmp := make([]byte, n)
	for len(buf) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes before giving up: %q", len(buf), n, buf)
		}
		k, err := r.Read(tmp[:n-len(buf)])
		buf = append(buf, tmp[:k]...)
		if err != nil && !serialport.IsTimeout(err) && !serialport.IsDisconnected(err) {
			t.Fatalf("read after %q: %v", buf, err)
		}
	}
	return buf
}

func TestReconnectingSurvivesUnplugReplug(t *testing.T) {
	before := runtime.NumGoroutine()
	pair, err := pty.New(filepath.Join(t.TempDir(), "ttyUSB-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	var states stateLog
	r, err := serialport.OpenReconnecting(pair.Path(), serialport.Mode{BaudRate: 9600}, serialport.ReconnectOptions{
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		PathCheck:  50 * time.Millisecond,
		Logger:     testLogger(t),
		OnState:    states.on,
	})
	if err != nil {
		t.Fatalf("OpenReconnecting: %v", err)
	}
	defer r.Close()
	if err := r.SetReadTimeout(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}

	if _, err := pair.Device().Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, r, 6); string(got) != "before" {
		t.Fatalf("got %q", got)
	}

	if err := pair.Unplug(); err != nil {
		t.Fatal(err)
	}
	// The loss shows as Disconnected on Read, and then on Write while down.
	deadline := time.Now().Add(wait)
	for {
		_, err := r.Read(make([]byte, 8))
		if serialport.IsDisconnected(err) {
			break
		}
		if err != nil && !serialport.IsTimeout(err) || time.Now().After(deadline) {
			t.Fatalf("Read after unplug: %v, want Disconnected", err)
		}
	}
	if _, err := r.Write([]byte("x")); !serialport.IsDisconnected(err) {
		t.Fatalf("Write while unplugged: %v, want Disconnected", err)
	}
	if r.Up() {
		t.Fatal("Up() after unplug")
	}

	if err := pair.Replug(); err != nil {
		t.Fatal(err)
	}
	// Written right after replug, before the port has necessarily reopened.
	if _, err := pair.Device().Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, r, 5); string(got) != "after" {
		t.Fatalf("after replug got %q", got)
	}
	if _, err := r.Write([]byte("ping")); err != nil {
		t.Fatalf("Write after reconnect: %v", err)
	}
	if got := readFull(t, pair.Device(), 4); string(got) != "ping" {
		t.Fatalf("device got %q", got)
	}
	if n := r.Reconnects(); n != 1 {
		t.Fatalf("Reconnects = %d, want 1", n)
	}
	if !r.Up() {
		t.Fatal("not Up after reconnect")
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := states.get(), []bool{true, false, true, false}; !equalBools(got, want) {
		t.Fatalf("OnState calls %v, want %v", got, want)
	}
	if _, err := r.Read(make([]byte, 1)); !serialport.IsClosed(err) {
		t.Fatalf("Read after Close: %v", err)
	}
	_ = pair.Close()
	goroutinesSettle(t, before)
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReconnectingStartsWithDeviceAbsent(t *testing.T) {
	before := runtime.NumGoroutine()
	link := filepath.Join(t.TempDir(), "ttyLATE")
	r, err := serialport.OpenReconnecting(link, serialport.Mode{}, serialport.ReconnectOptions{
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("OpenReconnecting with the device absent: %v", err)
	}
	defer r.Close()
	if err := r.SetReadTimeout(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); !serialport.IsDisconnected(err) {
		t.Fatalf("Read while absent: %v, want Disconnected", err)
	}
	pair, err := pty.New(link)
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	if _, err := pair.Device().Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, r, 2); string(got) != "hi" {
		t.Fatalf("got %q", got)
	}
	if n := r.Reconnects(); n != 0 {
		t.Fatalf("Reconnects = %d after a first open, want 0", n)
	}
	r.Close()
	pair.Close()
	goroutinesSettle(t, before)
}

func TestReconnectingCloseUnblocksReadWhileDown(t *testing.T) {
	before := runtime.NumGoroutine()
	r, err := serialport.OpenReconnecting(filepath.Join(t.TempDir(), "absent"), serialport.Mode{}, serialport.ReconnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { // no read timeout: waits for the device or Close
		_, err := r.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it block; the test holds without it
	r.Close()
	select {
	case err := <-done:
		if !serialport.IsClosed(err) {
			t.Fatalf("Read returned %v, want Closed", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not unblock Read")
	}
	goroutinesSettle(t, before)
}

func TestReconnectingRejectsInvalidPath(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", plain} {
		if r, err := serialport.OpenReconnecting(p, serialport.Mode{}, serialport.ReconnectOptions{}); !serialport.Is(err, serialport.Invalid) {
			if r != nil {
				r.Close()
			}
			t.Errorf("OpenReconnecting(%q): %v, want Invalid", p, err)
		}
	}
}

// With no I/O in flight, only the path check can notice the unplug.
func TestReconnectingNoticesVanishedPathWithoutIO(t *testing.T) {
	pair, err := pty.New(filepath.Join(t.TempDir(), "ttyIDLE"))
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	r, err := serialport.OpenReconnecting(pair.Path(), serialport.Mode{}, serialport.ReconnectOptions{
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		PathCheck: 20 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitUp := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for r.Up() != want {
			if time.Now().After(deadline) {
				t.Fatalf("Up() never became %v", want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitUp(true)
	if err := pair.Unplug(); err != nil {
		t.Fatal(err)
	}
	waitUp(false)
	if err := pair.Replug(); err != nil {
		t.Fatal(err)
	}
	waitUp(true)
	if n := r.Reconnects(); n != 1 {
		t.Fatalf("Reconnects = %d, want 1", n)
	}
}
