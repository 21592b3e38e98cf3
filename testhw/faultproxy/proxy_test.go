package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// echoServer accepts on loopback and echoes every byte back; t.Cleanup
// closes it and every connection and waits for its goroutines.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c) // ends when either side closes
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(echoServer(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// echo writes msg and reads it back within a generous bound.
func echo(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closedByPeer reports whether reading c ends with EOF or a reset within 10 s.
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestForward(t *testing.T) {
	t.Parallel()
	p := newProxy(t)
	if p.URL() != "tcp://"+p.Addr() {
		t.Fatalf("URL %q", p.URL())
	}
	c := dial(t, p)
	echo(t, c, []byte("hello"))
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, several chunks
	echo(t, c, big)
	st := p.Stats()
	want := int64(len("hello") + len(big))
	if st.Accepted != 1 || st.Active != 1 || st.BytesUp != want || st.BytesDown != want {
		t.Fatalf("stats %+v, want 1 accepted, 1 active, %d bytes each way", st, want)
	}
}

func TestCut(t *testing.T) {
	t.Parallel()
	p := newProxy(t)
	a, b := dial(t, p), dial(t, p)
	echo(t, a, []byte("a"))
	echo(t, b, []byte("b"))
	p.Cut()
	if !closedByPeer(t, a) || !closedByPeer(t, b) {
		t.Fatal("a connection survived Cut")
	}
	waitFor(t, "links to go", func() bool { return p.Stats().Active == 0 })
	c := dial(t, p)
	echo(t, c, []byte("after cut"))
	if st := p.Stats(); st.Cuts != 1 || st.CutConns != 2 || st.Accepted != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBlackHoleHoldsThenDelivers(t *testing.T) {
	t.Parallel()
	p := newProxy(t)
	old := dial(t, p)
	echo(t, old, []byte("before"))
	p.SetBlackHole(true)
	if _, err := old.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	fresh := dial(t, p) // accepted, but not dialled through
	if _, err := fresh.Write([]byte("fresh")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new connection to be accepted", func() bool { return p.Stats().Accepted == 2 })
	// Nothing may cross while the black hole is on. A short read proves
	// nothing by itself; the byte counters are the real check.
	if err := old.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := old.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a black hole: n=%d err=%v", n, err)
	}
	if st := p.Stats(); st.BytesUp != int64(len("before")) || st.BytesDown != int64(len("before")) {
		t.Fatalf("bytes crossed the black hole: %+v", st)
	}
	p.SetBlackHole(false)
	got := make([]byte, len("held"))
	if err := old.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(old, got); err != nil || string(got) != "held" {
		t.Fatalf("held bytes after the black hole: %q, %v", got, err)
	}
	got = make([]byte, len("fresh"))
	if err := fresh.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(fresh, got); err != nil || string(got) != "fresh" {
		t.Fatalf("new connection after the black hole: %q, %v", got, err)
	}
}

func TestBlackHoleCut(t *testing.T) {
	t.Parallel()
	p := newProxy(t)
	p.SetBlackHole(true)
	c := dial(t, p)
	waitFor(t, "accept", func() bool { return p.Stats().Active == 1 })
	p.Cut()
	if !closedByPeer(t, c) {
		t.Fatal("a held connection survived Cut")
	}
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	p := newProxy(t)
	open := dial(t, p)
	echo(t, open, []byte("x"))
	p.SetRefuse(true)
	c := dial(t, p)
	if !closedByPeer(t, c) {
		t.Fatal("refused connection stayed open")
	}
	echo(t, open, []byte("open connections are untouched"))
	p.SetRefuse(false)
	echo(t, dial(t, p), []byte("accepted again"))
	if st := p.Stats(); st.Refused != 1 || st.Accepted != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	p := newProxy(t)
	c := dial(t, p)
	echo(t, c, []byte("warm"))
	const d = 150 * time.Millisecond
	p.SetDelay(d)
	// Timers never fire early, so a round trip through two delayed
	// directions takes at least 2d: a lower bound, robust on a slow machine.
	start := time.Now()
	echo(t, c, []byte("delayed"))
	if rtt := time.Since(start); rtt < 2*d {
		t.Fatalf("round trip %v with %v one-way delay", rtt, d)
	}
	// Pipelined, not serialised, and in order: many small writes come back
	// in the order sent.
	var want bytes.Buffer
	for i := range 50 {
		msg := []byte{byte('A' + i%26)}
		want.Write(msg)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, want.Len())
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %q, %v; want %q", got, err, want.Bytes())
	}
	p.SetDelay(0)
	echo(t, c, []byte("undelayed"))
}

func TestBandwidth(t *testing.T) {
	t.Parallel()
	p := newProxy(t)
	c := dial(t, p)
	echo(t, c, []byte("warm"))
	const bps = 8000
	p.SetBandwidth(bps)
	msg := bytes.Repeat([]byte("z"), bps) // one second's worth each way
	start := time.Now()
	echo(t, c, msg)
	// Pacing sends the first slice at once; the rest of the bytes need at
	// least (len-slice)/bps. A lower bound only, so never flaky.
	slice := bps / int(time.Second/paceSlice)
	if took, least := time.Since(start), time.Duration(len(msg)-slice)*time.Second/bps; took < least {
		t.Fatalf("%d bytes at %d B/s took %v, less than %v", len(msg), bps, took, least)
	}
	p.SetBandwidth(0)
	echo(t, c, bytes.Repeat([]byte("y"), 1<<20))
}

func TestHalfClose(t *testing.T) {
	t.Parallel()
	p := newProxy(t)
	c := dial(t, p)
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "last words" {
		t.Fatalf("after half-close read %q, %v", got, err)
	}
	waitFor(t, "the link to end", func() bool { return p.Stats().Active == 0 })
}

func TestTargetDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // now nothing listens at addr
	p, err := New(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dial(t, p)
	if !closedByPeer(t, c) {
		t.Fatal("connection to a dead target stayed open")
	}
	waitFor(t, "dial error counted", func() bool { return p.Stats().DialErrors == 1 })
}

func TestCloseEndsEverything(t *testing.T) {
	t.Parallel()
	p, err := New(echoServer(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	echo(t, c, []byte("x"))
	p.SetBlackHole(true)
	held := dial(t, p)
	p.SetDelay(time.Hour) // a writer asleep on a delay must not hold Close
	if _, err := c.Write([]byte("never")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := p.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	if !closedByPeer(t, c) || !closedByPeer(t, held) {
		t.Fatal("a connection survived Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
}
