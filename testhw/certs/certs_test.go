package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func load(t *testing.T, p Pair) *x509.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatalf("load %s: %v", p.CertFile, err)
	}
	c, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", file)
	}
	return p
}

func TestGenerateChains(t *testing.T) {
	p := ForTest(t)
	ca, other := pool(t, p.CAFile), pool(t, p.OtherCAFile)
	server := load(t, p.Server)
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: ca, DNSName: name}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: other, DNSName: "127.0.0.1"}); err == nil {
		t.Error("server certificate verifies against the other CA")
	}
	clientUse := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	client, foreign := load(t, p.Client), load(t, p.ForeignClient)
	if _, err := client.Verify(x509.VerifyOptions{Roots: ca, KeyUsages: clientUse}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := foreign.Verify(x509.VerifyOptions{Roots: ca, KeyUsages: clientUse}); err == nil {
		t.Error("foreign client certificate verifies against the CA")
	}
	if _, err := foreign.Verify(x509.VerifyOptions{Roots: other, KeyUsages: clientUse}); err != nil {
		t.Errorf("foreign client certificate against its own CA: %v", err)
	}
	if client.Subject.CommonName != ClientCN || foreign.Subject.CommonName != ClientCN {
		t.Errorf("client CNs %q, %q, want %q", client.Subject.CommonName, foreign.Subject.CommonName, ClientCN)
	}
	if client.SerialNumber.Cmp(foreign.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
	for _, key := range []string{p.Server.KeyFile, p.Client.KeyFile, p.ForeignClient.KeyFile} {
		st, err := os.Stat(key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", key, st.Mode().Perm())
		}
	}
}

func TestGenerateMissingDir(t *testing.T) {
	if _, err := Generate(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrGenerate) {
		t.Fatalf("Generate into a missing dir = %v, want ErrGenerate", err)
	}
}
