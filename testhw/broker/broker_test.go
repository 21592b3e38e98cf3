package broker

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

var clientSeq atomic.Int64

// roundtrip connects two paho clients to url, subscribes one, publishes
// from the other at QoS 1, and checks the message arrives intact.
func roundtrip(t *testing.T, url string) {
	t.Helper()
	connect := func(role string) paho.Client {
		opts := paho.NewClientOptions().AddBroker(url).
			SetClientID(fmt.Sprintf("brokertest-%s-%d", role, clientSeq.Add(1))).
			SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		c := paho.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s to %s: %v", role, url, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(50) })
		return c
	}
	sub, pub := connect("sub"), connect("pub")
	got := make(chan []byte, 1)
	topic := fmt.Sprintf("kioskedge/test/%d", clientSeq.Add(1))
	tok := sub.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	want := "hello " + topic
	tok = pub.Publish(topic, 1, false, want)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case p := <-got:
		if string(p) != want {
			t.Fatalf("received %q, want %q", p, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not delivered within 10s")
	}
}

// refused reports whether nothing accepts TCP connections on addr.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	_ = c.Close() // only the dial outcome matters
	return false
}

func TestRoundtrip(t *testing.T) {
	Each(t, func(t *testing.T, b *Broker) {
		t.Parallel()
		if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") || b.URL() != "tcp://"+b.Addr() {
			t.Fatalf("URL %q, Addr %q", b.URL(), b.Addr())
		}
		roundtrip(t, b.URL())
	})
}

func TestStopRestartKeepsPort(t *testing.T) {
	Each(t, func(t *testing.T, b *Broker) {
		t.Parallel()
		addr := b.Addr()
		if err := b.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if b.Running() {
			t.Fatal("Running after Stop")
		}
		if !refused(addr) {
			t.Fatalf("%s still accepts after Stop", addr)
		}
		if err := b.Stop(); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		for i := range 2 { // from stopped, then from running
			if err := b.Restart(); err != nil {
				t.Fatalf("Restart %d: %v", i, err)
			}
			if b.Addr() != addr {
				t.Fatalf("Restart moved the broker from %s to %s", addr, b.Addr())
			}
			roundtrip(t, b.URL())
		}
	})
}

func TestRestartDropsClients(t *testing.T) {
	Each(t, func(t *testing.T, b *Broker) {
		t.Parallel()
		lost := make(chan struct{})
		opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(fmt.Sprintf("brokertest-lost-%d", clientSeq.Add(1))).
			SetAutoReconnect(false).SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		defer c.Disconnect(0)
		if err := b.Restart(); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("client did not see its connection lost across a restart")
		}
	})
}

func TestCloseIdempotent(t *testing.T) {
	Each(t, func(t *testing.T, b *Broker) {
		t.Parallel()
		addr := b.Addr()
		for i := range 2 {
			if err := b.Close(); err != nil {
				t.Fatalf("Close %d: %v", i, err)
			}
		}
		if !refused(addr) {
			t.Fatalf("%s still accepts after Close", addr)
		}
		if err := b.Restart(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Restart after Close = %v, want ErrClosed", err)
		}
		if err := b.Stop(); err != nil {
			t.Fatalf("Stop after Close: %v", err)
		}
	})
}

func TestFixedPort(t *testing.T) {
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			port, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			b := ForTest(t, Options{Kind: k, Port: port})
			if b.Port() != port {
				t.Fatalf("Port %d, want %d", b.Port(), port)
			}
			roundtrip(t, b.URL())
		})
	}
}

func TestPortBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if _, err := MosquittoPath(); err != nil {
		t.Skip(skipMessage)
	}
	for _, k := range Kinds {
		if b, err := Start(Options{Kind: k, Port: port}); err == nil {
			_ = b.Close() // started on a busy port: the test failed already
			t.Fatalf("%s started on busy port %d", k, port)
		}
	}
}

func TestUnknownKind(t *testing.T) {
	if _, err := Start(Options{Kind: "rabbit"}); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("Start(rabbit) = %v, want ErrUnknownKind", err)
	}
}

// mosquittoPid returns the pid of b's running mosquitto process.
func mosquittoPid(t *testing.T, b *Broker) int {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.run.(*mosquittoProc)
	if !ok {
		t.Fatalf("broker %s has no mosquitto process", b.Kind())
	}
	return p.cmd.Process.Pid
}

// gone reports whether no process has pid (it exited and was reaped).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestMosquittoNoProcessLeft(t *testing.T) {
	b := ForTest(t, Options{Kind: Mosquitto})
	first := mosquittoPid(t, b)
	if err := b.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if !gone(first) {
		t.Fatalf("pid %d still exists after Restart", first)
	}
	second := mosquittoPid(t, b)
	if second == first {
		t.Fatal("Restart kept the same process")
	}
	dir := b.mosq.dir
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !gone(second) {
		t.Fatalf("pid %d still exists after Close", second)
	}
	if _, err := syscall.Getpgid(second); err == nil {
		t.Fatalf("pid %d still exists after Close", second)
	}
	if err := syscall.Access(dir, 0); err == nil {
		t.Fatalf("temp dir %s left after Close", dir)
	}
}

func TestMosquittoBadConf(t *testing.T) {
	if _, err := MosquittoPath(); err != nil {
		t.Skip(skipMessage)
	}
	_, err := Start(Options{Kind: Mosquitto, MosquittoConf: "no_such_option 1"})
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Start with a bad config = %v, want ErrExited", err)
	}
	if !strings.Contains(err.Error(), "no_such_option") {
		t.Fatalf("error does not carry mosquitto's log: %v", err)
	}
}

func TestMosquittoLogTail(t *testing.T) {
	b := ForTest(t, Options{Kind: Mosquitto, MosquittoConf: "max_keepalive 120"})
	roundtrip(t, b.URL())
	waitLog(t, b, "New client connected")
}

// waitLog waits until mosquitto's log holds want. The log reaches the
// harness through a pipe, so a line can lag the event it reports.
func waitLog(t *testing.T, b *Broker, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.LogTail(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto log lacks %q:\n%s", want, b.LogTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRingLogBounded(t *testing.T) {
	r := &ringLog{max: 10}
	fmt.Fprint(r, "0123456789abc")
	if got := r.String(); !strings.HasSuffix(got, "3456789abc") || !strings.Contains(got, "dropped") {
		t.Fatalf("ring = %q", got)
	}
}

func TestMosquittoLimits(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, ""},
		{Options{MaxQueuedMessages: 100000}, "max_queued_messages 100000\n"},
		{Options{MaxQueuedMessages: 5000, MaxInflightMessages: 100}, "max_queued_messages 5000\nmax_inflight_messages 100\n"},
	} {
		if got := mosquittoLimits(tc.opts); got != tc.want {
			t.Errorf("mosquittoLimits(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
	}
	if _, err := Start(Options{Kind: Mosquitto, MaxQueuedMessages: -1}); err == nil {
		t.Error("a negative MaxQueuedMessages was accepted")
	}
	if _, err := MosquittoPath(); err != nil {
		t.Skip(skipMessage)
	}
	// mosquitto accepts the lines (a bad one makes Start fail with ErrExited).
	b := ForTest(t, Options{Kind: Mosquitto, MaxQueuedMessages: 5000, MaxInflightMessages: 100})
	roundtrip(t, b.URL())
}
