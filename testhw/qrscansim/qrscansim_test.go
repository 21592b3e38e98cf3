package qrscansim

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestSimulator(t *testing.T) {
	host, dev := net.Pipe()
	defer host.Close()
	sim := New(Options{AIM: "]Q1", Terminator: []byte("\r\n")})
	if err := sim.Scan("x"); !errors.Is(err, ErrDetached) {
		t.Fatalf("detached Scan = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Serve(ctx, dev) }()
	r := bufio.NewReader(host)
	readLine := func() string {
		t.Helper()
		if err := host.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for !sim.Attached() {
		time.Sleep(time.Millisecond)
	}
	go func() {
		// net.Pipe writes block until read; errors show up as missing lines.
		_ = sim.Scan("KE1.t")
		_ = sim.Garbage([]byte{0, 0xff})
		_ = sim.Truncated("abcdef", 3)
		_ = sim.Scan("next")
	}()
	for _, want := range []string{"]Q1KE1.t\r\n", "\x00\xff\r\n", "]Q1]Q1next\r\n"} {
		if got := readLine(); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	// Probe split across writes is answered; silent drops the answer.
	if _, err := host.Write(DefaultProbeRequest[:3]); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Write(DefaultProbeRequest[3:]); err != nil {
		t.Fatal(err)
	}
	if got := readLine(); got != "OK\r\n" {
		t.Fatalf("probe reply %q", got)
	}
	sim.SetSilent(true)
	if _, err := host.Write(DefaultProbeRequest); err != nil {
		t.Fatal(err)
	}
	for sim.Probes() != 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	host.Close() // unblocks the pipe read
	if err := <-done; err == nil {
		t.Fatal("Serve returned nil")
	}
	if sim.Attached() {
		t.Fatal("still attached")
	}
}
