package pty_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/pty"
)

func openDriverSide(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func readN(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	if f, ok := r.(*os.File); ok {
		if err := f.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf
}

func TestPairIsRawBothWays(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyX")
	p, err := pty.New(link)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if target, err := os.Readlink(link); err != nil || target != p.SlavePath() {
		t.Fatalf("link → %q, %v; want %q", target, err, p.SlavePath())
	}
	drv := openDriverSide(t, p.Path())
	// Binary with CR, LF, ^C, ^D, ^S, ^Q, DEL: a cooked tty would mangle these.
	msg := []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, '\r', '\n', 0x03, 0x04, 0x13, 0x11, 0x7f, 0x00, 0xff}
	if _, err := p.Device().Write(msg); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, drv, len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("driver got %x, want %x", got, msg)
	}
	if _, err := drv.Write(msg); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, p.Device(), len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("device got %x, want %x (echo or translation?)", got, msg)
	}
}

func TestUnplugFailsDriverAndReplugRestoresPath(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyY")
	p, err := pty.New(link)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	drv := openDriverSide(t, p.Path())
	old := p.SlavePath()

	if err := p.Unplug(); err != nil {
		t.Fatal(err)
	}
	if p.Plugged() {
		t.Fatal("Plugged after Unplug")
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link still there after Unplug: %v", err)
	}
	// EIO from read(2); os.File reports the hang-up as io.EOF.
	if _, err := drv.Read(make([]byte, 1)); !errors.Is(err, syscall.EIO) && err != io.EOF {
		t.Fatalf("driver read after unplug: %v, want EIO or EOF", err)
	}
	if _, err := p.Device().Write([]byte{1}); err == nil {
		t.Fatal("write to an unplugged device succeeded")
	}
	if err := p.Unplug(); err != nil {
		t.Fatalf("second Unplug: %v", err)
	}

	if err := p.Replug(); err != nil {
		t.Fatal(err)
	}
	if p.SlavePath() == old {
		t.Fatalf("replug reused %s while the old slave is still open", old)
	}
	drv2 := openDriverSide(t, p.Path())
	if _, err := p.Device().Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, drv2, 2); string(got) != "ok" {
		t.Fatalf("after replug got %q", got)
	}
}

func TestCloseIsIdempotentAndUnblocksDevice(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyZ")
	p, err := pty.New(link)
	if err != nil {
		t.Fatal(err)
	}
	dev := p.Device()
	done := make(chan error, 1)
	go func() {
		_, err := dev.Read(make([]byte, 1))
		done <- err
	}()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("device read after Close returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock a device Read")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Replug(); !errors.Is(err, pty.ErrClosed) {
		t.Fatalf("Replug after Close: %v, want ErrClosed", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link left after Close: %v", err)
	}
}

func TestNewRefusesToReplaceAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := pty.New(f); err == nil {
		p.Close()
		t.Fatal("New replaced a regular file")
	}
	if b, _ := os.ReadFile(f); string(b) != "keep" {
		t.Fatal("file changed")
	}
}

// A simulator blocked reading the device side must be released by Unplug,
// and read deadlines on it must work: both need a pollable master.
func TestDeviceReadIsInterruptible(t *testing.T) {
	p, err := pty.New(filepath.Join(t.TempDir(), "ttyDEV"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	f, ok := p.Device().(*os.File)
	if !ok {
		t.Fatalf("Device is %T, want *os.File", p.Device())
	}
	if err := f.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := f.Read(make([]byte, 1))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read deadline on the device side was ignored (blocking master)")
	}
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Device().Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the read block
	if err := p.Unplug(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a read on an unplugged device succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Unplug did not end a blocked Read on the device side")
	}
}

func TestReadContext(t *testing.T) {
	p, err := pty.New(filepath.Join(t.TempDir(), "ttyCTX"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := pty.ReadContext(ctx, p.Device(), make([]byte, 8))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadContext after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadContext did not notice its context ending")
	}
	// Data written by the driver side arrives through it.
	drv, err := os.OpenFile(p.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	if _, err := drv.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, err := pty.ReadContext(context.Background(), p.Device(), buf)
	if err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("ReadContext = %q, %v", buf[:n], err)
	}
}
