package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/sync/hubca"
)

func writeCSR(t *testing.T, dir, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, cn+".csr")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCAAndClaims(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	var out, errOut bytes.Buffer
	if err := caRun([]string{"init", "-dir", dir}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v", st, err)
	}
	if err := caRun([]string{"init", "-dir", dir}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Errorf("second init: %v", err)
	}

	out.Reset()
	if err := claimRun([]string{"create", "-dir", dir, "--count", "3", "--expires", "72h"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	toks := strings.Fields(out.String())
	if len(toks) != 3 {
		t.Fatalf("claim create printed %q", out.String())
	}
	for _, tok := range toks {
		if !strings.HasPrefix(tok, hubca.TokenPrefix) || len(tok) < len(hubca.TokenPrefix)+26 { // ≥ 128 bits in base32
			t.Errorf("token %d has the wrong form", len(tok))
		}
	}
	state, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	out.Reset()
	if err := claimRun([]string{"list", "-dir", dir}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "unused") != 3 {
		t.Errorf("claim list:\n%s", out.String())
	}
	for _, tok := range toks {
		if strings.Contains(out.String()+errOut.String()+string(state), tok) {
			t.Error("a token is stored or shown again")
		}
	}
	if err := claimRun([]string{"create", "-dir", dir, "-reenrol"}, &out, &errOut); err == nil {
		t.Error("-reenrol without -agent accepted")
	}

	// Offline signing.
	csr := writeCSR(t, t.TempDir(), "gate-7")
	pemOut := filepath.Join(t.TempDir(), "box.pem")
	out.Reset()
	if err := caRun([]string{"sign", "-dir", dir, "-csr", csr, "-out", pemOut}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "signed agent gate-7") {
		t.Errorf("sign said %q", out.String())
	}
	b, _ := os.ReadFile(pemOut)
	if n := strings.Count(string(b), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("box.pem holds %d certificates, want the box's and the CA's", n)
	}
	if err := caRun([]string{"sign", "-dir", dir, "-csr", csr, "-out", pemOut}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Errorf("sign over an existing file: %v", err)
	}
	other := filepath.Join(t.TempDir(), "again.pem")
	if err := caRun([]string{"sign", "-dir", dir, "-csr", csr, "-out", other}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "-reenrol") {
		t.Errorf("second certificate for gate-7: %v", err)
	}
	if err := caRun([]string{"sign", "-dir", dir, "-csr", csr, "-out", other, "-reenrol"}, &out, &errOut); err != nil {
		t.Errorf("re-enrolment: %v", err)
	}
	ca, err := hubca.Open(dir, hubca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if is, err := ca.Issued("gate-7"); err != nil || len(is) != 2 {
		t.Errorf("issued: %d %v", len(is), err)
	}
}

func TestCABadUsage(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{nil, {"frob"}, {"init"}, {"sign", "-dir", "x"}} {
		if err := caRun(args, &out, &out); err == nil {
			t.Errorf("ca %q accepted", args)
		}
	}
	for _, args := range [][]string{nil, {"frob"}, {"create"}, {"list"}, {"create", "-dir", t.TempDir()}} {
		if err := claimRun(args, &out, &out); err == nil {
			t.Errorf("claim %q accepted", args)
		}
	}
}
