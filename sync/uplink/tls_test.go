package uplink

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/certs"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
)

// runSession starts s.Run and, in t.Cleanup, closes s and waits up to 10s
// for Run to return nil.
func runSession(t *testing.T, s *Session) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		if err := s.Close(nil); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of Close")
		}
	})
}

// TestSessionTLS runs sessions against a real mosquitto whose TLS listener
// requires a client certificate signed by the test CA and takes its common
// name as the username.
func TestSessionTLS(t *testing.T) {
	t.Parallel()
	pki := certs.ForTest(t)
	b := broker.ForTest(t, broker.Options{Kind: broker.Mosquitto, TLS: &broker.TLSListener{
		CAFile: pki.CAFile, CertFile: pki.Server.CertFile, KeyFile: pki.Server.KeyFile,
		RequireClientCert: true, UseIdentityAsUsername: true,
	}})
	fastRetry := Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}

	t.Run("CA-signed client round-trips", func(t *testing.T) {
		t.Parallel()
		s, err := NewSession(SessionOptions{Broker: b.URL(), ClientID: "tls-ok", Backoff: fastRetry,
			TLS: &TLSFiles{CAFile: pki.CAFile, CertFile: pki.Client.CertFile, KeyFile: pki.Client.KeyFile}})
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 4)
		if err := s.Subscribe("kioskedge/tls/#", 1, func(topic string, p []byte) { got <- topic + " " + string(p) }); err != nil {
			t.Fatal(err)
		}
		runSession(t, s)
		roundtrip := func(payload string) {
			t.Helper()
			waitFor(t, "connected over TLS", s.Connected)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Publish(ctx, Message{Topic: "kioskedge/tls/a", QoS: 1, Payload: []byte(payload)}); err != nil {
				t.Fatalf("publish over TLS: %v", err)
			}
			select {
			case m := <-got:
				if want := "kioskedge/tls/a " + payload; m != want {
					t.Fatalf("received %q, want %q", m, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("message not delivered back within 10s")
			}
		}
		roundtrip("over tls")
		// The broker saw the certificate's identity, not an anonymous client.
		// Its log reaches the harness through a pipe, so the line may lag.
		want := "as tls-ok (p2, c1, k30, u'" + certs.ClientCN + "')"
		waitFor(t, "mosquitto to log the certificate identity "+want, func() bool { return strings.Contains(b.LogTail(), want) })
		if st := s.Stats(); st.Connects != 1 || st.ConnectFailures != 0 || st.Published != 1 {
			t.Fatalf("stats %+v, want one connect, no failure, one publish", st)
		}
		// The session reconnects over TLS, with the same configuration, to
		// a restarted broker and renews its subscription. (The refused
		// subtests sharing the broker keep failing across the restart.)
		if err := b.Restart(); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		waitFor(t, "reconnect over TLS", func() bool { return s.Stats().Reconnects == 1 })
		roundtrip("after reconnect")
	})

	// refused starts a session with files, waits for two failed attempts,
	// and checks it never connected, logged the failures (mentioning
	// reason), and that mosquitto never let the client in.
	refused := func(t *testing.T, clientID string, files TLSFiles, reason string) {
		t.Helper()
		var logs logbuf.Buffer
		s, err := NewSession(SessionOptions{Broker: b.URL(), ClientID: clientID, Backoff: fastRetry, TLS: &files,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
		if err != nil {
			t.Fatal(err)
		}
		runSession(t, s)
		// Another subtest restarts the shared broker, so some attempts fail
		// with EOF or a refused dial instead; wait for one that fails for
		// the reason under test (never connecting meanwhile).
		waitFor(t, "a connect failure mentioning "+reason, func() bool {
			out := logs.String()
			return s.Stats().ConnectFailures >= 2 && strings.Contains(out, "mqtt connect failed") && strings.Contains(out, reason)
		})
		if st := s.Stats(); st.Connected || st.Connects != 0 {
			t.Fatalf("stats %+v: the session connected", st)
		}
		if s.Connected() {
			t.Fatal("Connected reports true")
		}
		if err := s.Publish(context.Background(), Message{Topic: "kioskedge/tls/x", QoS: 1}); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("Publish = %v, want ErrNotConnected", err)
		}
		if strings.Contains(b.LogTail(), "as "+clientID+" ") {
			t.Fatalf("mosquitto accepted %s:\n%s", clientID, b.LogTail())
		}
	}

	t.Run("client certificate from another CA is refused", func(t *testing.T) {
		t.Parallel()
		// The session trusts the server; the broker refuses the certificate
		// at the end of the handshake. With TLS 1.3 the client has by then
		// finished its side and sends CONNECT, so what it reports depends
		// on timing: the broker's alert or a reset on that write. The
		// broker's log says why.
		refused(t, "tls-foreign",
			TLSFiles{CAFile: pki.CAFile, CertFile: pki.ForeignClient.CertFile, KeyFile: pki.ForeignClient.KeyFile},
			"err=")
		// Only this subtest presents a certificate the broker cannot verify
		// (the readiness probe presents none).
		waitFor(t, "mosquitto to log the verification failure", func() bool {
			return strings.Contains(b.LogTail(), "certificate verify failed")
		})
	})

	t.Run("server signed by an untrusted CA is refused", func(t *testing.T) {
		t.Parallel()
		refused(t, "tls-wrong-ca",
			TLSFiles{CAFile: pki.OtherCAFile, CertFile: pki.Client.CertFile, KeyFile: pki.Client.KeyFile},
			"certificate signed by unknown authority")
	})
}

// TestSessionPlaintextRefusedBeforeDial checks a plaintext URL without
// AllowPlaintext fails in NewSession, before anything dials the broker.
func TestSessionPlaintextRefusedBeforeDial(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pki := certs.ForTest(t)
	files := &TLSFiles{CAFile: pki.CAFile, CertFile: pki.Client.CertFile, KeyFile: pki.Client.KeyFile}
	for _, o := range []SessionOptions{
		{Broker: "tcp://" + ln.Addr().String(), ClientID: "plain"},
		{Broker: "mqtt://" + ln.Addr().String(), ClientID: "plain"},
		// TLS files do not make a plaintext URL acceptable.
		{Broker: "tcp://" + ln.Addr().String(), ClientID: "plain", TLS: files},
	} {
		s, err := NewSession(o)
		if !errors.Is(err, ErrPlaintext) || s != nil {
			t.Errorf("NewSession(%s, TLS %v) = %v, %v; want nil, ErrPlaintext", o.Broker, o.TLS != nil, s, err)
		}
	}
	// A dial would sit in the listen backlog by now: Accept must find
	// nothing pending.
	if err := ln.(*net.TCPListener).SetDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	if c, err := ln.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Accept = %v: something dialled the plaintext broker", err)
	}
}
