package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kioskedge/kioskedge/testhw/certs"
)

// clientTLS is a paho client configuration trusting caFile and presenting
// pair (none when pair is zero).
func clientTLS(t *testing.T, caFile string, pair certs.Pair) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	conf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if pair.CertFile != "" {
		kp, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{kp}
	}
	return conf
}

// tlsConnect connects one paho client over TLS and returns the connect
// error; a connected client is disconnected in t.Cleanup.
func tlsConnect(t *testing.T, url string, conf *tls.Config) error {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetTLSConfig(conf).
		SetClientID(fmt.Sprintf("brokertest-tls-%d", clientSeq.Add(1))).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("connect to %s: no outcome within 10s", url)
	}
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(50) })
	}
	return tok.Error()
}

func TestTLSClientCertificates(t *testing.T) {
	pki := certs.ForTest(t)
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b := ForTest(t, Options{Kind: k, TLS: &TLSListener{
				CAFile: pki.CAFile, CertFile: pki.Server.CertFile, KeyFile: pki.Server.KeyFile,
				RequireClientCert: true,
			}})
			if b.URL() != "ssl://"+b.Addr() {
				t.Fatalf("URL %q, want ssl://%s", b.URL(), b.Addr())
			}
			good := clientTLS(t, pki.CAFile, pki.Client)
			if err := tlsConnect(t, b.URL(), good); err != nil {
				t.Fatalf("CA-signed client refused: %v", err)
			}
			if err := tlsConnect(t, b.URL(), clientTLS(t, pki.CAFile, pki.ForeignClient)); err == nil {
				t.Fatal("client signed by another CA connected")
			}
			if err := tlsConnect(t, b.URL(), clientTLS(t, pki.CAFile, certs.Pair{})); err == nil {
				t.Fatal("client without a certificate connected")
			}
			if err := tlsConnect(t, "tcp://"+b.Addr(), nil); err == nil {
				t.Fatal("plaintext client connected to the TLS listener")
			}
			// A restart keeps the TLS listener.
			if err := b.Restart(); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if err := tlsConnect(t, b.URL(), good); err != nil {
				t.Fatalf("CA-signed client refused after Restart: %v", err)
			}
		})
	}
}

func TestTLSWithoutClientCertificates(t *testing.T) {
	pki := certs.ForTest(t)
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			// No RequireClientCert: the readiness probe runs a full MQTT
			// exchange over TLS, and clients need no certificate.
			b := ForTest(t, Options{Kind: k, TLS: &TLSListener{CertFile: pki.Server.CertFile, KeyFile: pki.Server.KeyFile}})
			if err := tlsConnect(t, b.URL(), clientTLS(t, pki.CAFile, certs.Pair{})); err != nil {
				t.Fatalf("client without a certificate refused: %v", err)
			}
			if err := tlsConnect(t, b.URL(), clientTLS(t, pki.OtherCAFile, certs.Pair{})); err == nil {
				t.Fatal("client trusting another CA accepted the broker's certificate")
			}
		})
	}
}

func TestTLSIdentityAsUsername(t *testing.T) {
	pki := certs.ForTest(t)
	b := ForTest(t, Options{Kind: Mosquitto, TLS: &TLSListener{
		CAFile: pki.CAFile, CertFile: pki.Server.CertFile, KeyFile: pki.Server.KeyFile,
		RequireClientCert: true, UseIdentityAsUsername: true,
	}})
	if err := tlsConnect(t, b.URL(), clientTLS(t, pki.CAFile, pki.Client)); err != nil {
		t.Fatalf("CA-signed client refused: %v", err)
	}
	waitLog(t, b, "u'"+certs.ClientCN+"'")
}

func TestTLSOptionErrors(t *testing.T) {
	pki := certs.ForTest(t)
	srv := pki.Server
	for _, tc := range []struct {
		name string
		kind Kind
		l    TLSListener
		msg  string
	}{
		{"no cert", Mochi, TLSListener{KeyFile: srv.KeyFile}, "CertFile"},
		{"client certs without CA", Mochi, TLSListener{CertFile: srv.CertFile, KeyFile: srv.KeyFile, RequireClientCert: true}, "CAFile"},
		{"identity without client certs", Mosquitto, TLSListener{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: pki.CAFile, UseIdentityAsUsername: true}, "RequireClientCert"},
		{"identity on mochi", Mochi, TLSListener{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: pki.CAFile, RequireClientCert: true, UseIdentityAsUsername: true}, "Mosquitto only"},
		{"key mismatch", Mochi, TLSListener{CertFile: srv.CertFile, KeyFile: pki.Client.KeyFile}, "server.pem"},
		{"CA not PEM", Mochi, TLSListener{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: srv.KeyFile}, "no PEM"},
	} {
		_, err := Start(Options{Kind: tc.kind, TLS: &tc.l})
		if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Start = %v, want ErrTLS mentioning %q", tc.name, err, tc.msg)
		}
	}
}
