package uplink

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	huge := Backoff{Min: time.Second, Max: time.Duration(1<<63 - 1)}
	for _, tc := range []struct {
		name    string
		b       Backoff
		attempt int
		r       float64
		want    time.Duration
	}{
		{"first full", b, 0, 0.999999, 99999900 * time.Nanosecond},
		{"first half", b, 0, 0.5, 50 * time.Millisecond},
		{"doubles", b, 1, 0.5, 100 * time.Millisecond},
		{"doubles again", b, 3, 1, 800 * time.Millisecond},
		{"capped", b, 5, 1, 2 * time.Second},
		{"capped far", b, 1000, 0.5, time.Second},
		{"zero jitter", b, 4, 0, 0},
		{"negative jitter clamps", b, 2, -3, 0},
		{"jitter over one clamps", b, 0, 7, 100 * time.Millisecond},
		{"no min", Backoff{Max: time.Second}, 3, 1, 0},
		{"max below min", Backoff{Min: time.Second, Max: time.Millisecond}, 3, 1, time.Second},
		{"no overflow", huge, 200, 1, time.Duration(1<<63 - 1)},
		{"no overflow mid", huge, 62, 0.5, time.Duration(float64(time.Duration(1<<63-1)) * 0.5)},
	} {
		if got := tc.b.Delay(tc.attempt, tc.r); got != tc.want {
			t.Errorf("%s: Delay(%d, %v) = %v, want %v", tc.name, tc.attempt, tc.r, got, tc.want)
		}
	}
}

func TestNewSessionValidation(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeCerts(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	for _, tc := range []struct {
		name string
		o    SessionOptions
		want error
		msg  string
	}{
		{"plaintext refused", SessionOptions{Broker: "tcp://127.0.0.1:1883", ClientID: "a"}, ErrPlaintext, "AllowPlaintext"},
		{"mqtt plaintext refused", SessionOptions{Broker: "mqtt://127.0.0.1:1883", ClientID: "a"}, ErrPlaintext, "AllowPlaintext"},
		{"plaintext allowed", SessionOptions{Broker: "tcp://127.0.0.1:1883", ClientID: "a", AllowPlaintext: true}, nil, ""},
		{"no client id", SessionOptions{Broker: "tcp://127.0.0.1:1883", AllowPlaintext: true}, ErrOptions, "ClientID"},
		{"no port", SessionOptions{Broker: "ssl://hub", ClientID: "a", TLS: &TLSFiles{CAFile: ca, CertFile: cert, KeyFile: key}}, ErrOptions, "port"},
		{"bad scheme", SessionOptions{Broker: "ws://hub:80", ClientID: "a"}, ErrOptions, "scheme"},
		{"tls without files", SessionOptions{Broker: "ssl://hub:8883", ClientID: "a"}, ErrOptions, "TLS"},
		{"tls with plaintext url", SessionOptions{Broker: "tcp://hub:1883", ClientID: "a", AllowPlaintext: true, TLS: &TLSFiles{CertFile: cert, KeyFile: key}}, ErrOptions, "plaintext"},
		{"no cert", SessionOptions{Broker: "mqtts://hub:8883", ClientID: "a", TLS: &TLSFiles{CAFile: ca}}, ErrTLS, "CertFile"},
		{"missing key file", SessionOptions{Broker: "ssl://hub:8883", ClientID: "a", TLS: &TLSFiles{CAFile: ca, CertFile: cert, KeyFile: filepath.Join(dir, "nope.pem")}}, ErrTLS, "nope.pem"},
		{"missing ca", SessionOptions{Broker: "ssl://hub:8883", ClientID: "a", TLS: &TLSFiles{CAFile: filepath.Join(dir, "noca.pem"), CertFile: cert, KeyFile: key}}, ErrTLS, "CA file"},
		{"garbage ca", SessionOptions{Broker: "ssl://hub:8883", ClientID: "a", TLS: &TLSFiles{CAFile: garbage, CertFile: cert, KeyFile: key}}, ErrTLS, "no PEM"},
		{"key mismatch", SessionOptions{Broker: "ssl://hub:8883", ClientID: "a", TLS: &TLSFiles{CAFile: ca, CertFile: cert, KeyFile: garbage}}, ErrTLS, "garbage.pem"},
		{"tls ok", SessionOptions{Broker: "ssl://hub:8883", ClientID: "a", TLS: &TLSFiles{CAFile: ca, CertFile: cert, KeyFile: key}}, nil, ""},
		{"bad backoff", SessionOptions{Broker: "tcp://h:1", ClientID: "a", AllowPlaintext: true, Backoff: Backoff{Min: time.Second, Max: time.Millisecond}}, ErrOptions, "Backoff.Max"},
		{"bad will", SessionOptions{Broker: "tcp://h:1", ClientID: "a", AllowPlaintext: true, Will: &Message{}}, ErrOptions, "Will"},
	} {
		s, err := NewSession(tc.o)
		if tc.want == nil {
			if err != nil || s == nil {
				t.Errorf("%s: unexpected error %v", tc.name, err)
			} else if strings.HasPrefix(tc.o.Broker, "ssl") && (s.tlsConf == nil || s.tlsConf.RootCAs == nil || len(s.tlsConf.Certificates) != 1) {
				t.Errorf("%s: TLS config incomplete", tc.name)
			}
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %v mentioning %q", tc.name, err, tc.want, tc.msg)
		}
	}
}

// writeCerts writes a self-signed CA and a client certificate it signed.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cliKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cliTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "box-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cliDER, err := x509.CreateCertificate(rand.Reader, cliTmpl, caTmpl, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(cliKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", cliDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}

func TestSessionPublishSubscribe(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		var got atomic.Int64
		var onConnect atomic.Int64
		s, err := NewSession(SessionOptions{Broker: b.URL(), ClientID: "s1", AllowPlaintext: true, MaxMessage: 100,
			OnConnect: func(ctx context.Context, s *Session) { onConnect.Add(1) },
			Backoff:   Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Publish(context.Background(), Message{Topic: "a/b", QoS: 1}); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("publish before connect: %v", err)
		}
		if err := <-s.PublishAsync(Message{Topic: "a/b", QoS: 1}); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("async publish before connect: %v", err)
		}
		if err := s.Subscribe("a/#", 1, func(topic string, p []byte) { got.Add(1) }); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		waitFor(t, "connected", s.Connected)
		waitFor(t, "OnConnect", func() bool { return onConnect.Load() == 1 })
		if err := s.Publish(ctx, Message{Topic: "a/b", QoS: 1, Payload: []byte("small")}); err != nil {
			t.Fatal(err)
		}
		if err := <-s.PublishAsync(Message{Topic: "a/c", QoS: 1, Payload: make([]byte, 101)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery", func() bool { return got.Load() == 1 && s.Stats().Dropped == 1 })
		// Restarting the broker: the session reconnects and renews the subscription.
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "reconnect", func() bool { return s.Stats().Reconnects == 1 && s.Connected() })
		waitFor(t, "OnConnect again", func() bool { return onConnect.Load() == 2 })
		if err := s.Publish(ctx, Message{Topic: "a/d", QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery after reconnect", func() bool { return got.Load() == 2 })
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if s.Connected() {
			t.Fatal("still connected after Run returned")
		}
		if err := s.Close(nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Run(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Run after Close: %v", err)
		}
	})
}

func TestSessionRetriesUnreachableBroker(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		url := b.URL()
		if err := b.Stop(); err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(SessionOptions{Broker: url, ClientID: "s2", AllowPlaintext: true,
			Rand:    func() float64 { return 0.5 },
			Backoff: Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		waitFor(t, "failed attempts", func() bool { return s.Stats().ConnectFailures >= 3 })
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "connected", s.Connected)
		if err := s.Close(nil); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := s.Close(nil); err != nil { // idempotent
			t.Fatal(err)
		}
	})
}

// Close called while Run is still connecting must end the connection Run
// makes in the meantime: Close used to capture the current connection (none
// yet) before marking the session closed, so a connection made in between
// stayed up after Run returned, its paho client running for ever.
func TestSessionCloseRacingConnect(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		s, err := NewSession(SessionOptions{Broker: b.URL(), ClientID: "close-race", AllowPlaintext: true,
			Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		var made *conn
		s.beforeClosed = func() {
			waitFor(t, "connected meanwhile", s.Connected)
			s.mu.Lock()
			made = s.cur
			s.mu.Unlock()
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(context.Background()) }()
		if err := s.Close(&Message{Topic: "x/y", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if made == nil {
			t.Fatal("no connection was made")
		}
		if made.client.IsConnectionOpen() {
			made.client.Disconnect(0)
			t.Fatal("the connection made while closing is still open after Run returned")
		}
	})
}
