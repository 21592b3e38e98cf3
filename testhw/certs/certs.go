package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ErrGenerate wraps every failure to generate or write the PKI.
var ErrGenerate = errors.New("certs: generate")

// ClientCN is the common name of both client certificates, so a broker
// that takes the certificate identity as the username sees the same name
// whichever CA signed it.
const ClientCN = "box-1"

// Pair names a certificate and its private key, both PEM files.
type Pair struct {
	CertFile, KeyFile string
}

// PKI is a generated set of PEM files in Dir.
type PKI struct {
	// Dir holds every file below.
	Dir string
	// CAFile is the trusted CA: it signed Server and Client.
	CAFile string
	// Server is the broker's certificate, for 127.0.0.1, ::1 and
	// localhost (CN "kioskedge-test-broker").
	Server Pair
	// Client is a client certificate signed by CAFile, CN ClientCN.
	Client Pair
	// OtherCAFile is an unrelated CA; it signed ForeignClient only.
	OtherCAFile string
	// ForeignClient is a client certificate signed by OtherCAFile, CN
	// ClientCN: a broker trusting CAFile must refuse it.
	ForeignClient Pair
}

// Generate writes a new PKI into dir, which must exist: ca.pem,
// server.pem, server-key.pem, client.pem, client-key.pem, other-ca.pem,
// foreign-client.pem and foreign-client-key.pem. Keys are written 0600,
// certificates 0644. Every error wraps ErrGenerate; files written before
// an error are left in dir for the caller to remove.
func Generate(dir string) (*PKI, error) {
	p := &PKI{Dir: dir}
	now := time.Now()
	ca, err := newCA(now, "kioskedge test CA")
	if err != nil {
		return nil, err
	}
	other, err := newCA(now, "kioskedge other CA")
	if err != nil {
		return nil, err
	}
	server := leaf(now, "kioskedge-test-broker", x509.ExtKeyUsageServerAuth)
	server.DNSNames = []string{"localhost"}
	server.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}

	if p.CAFile, err = writeCert(dir, "ca.pem", ca.der); err != nil {
		return nil, err
	}
	if p.OtherCAFile, err = writeCert(dir, "other-ca.pem", other.der); err != nil {
		return nil, err
	}
	if p.Server, err = issue(dir, "server", server, ca); err != nil {
		return nil, err
	}
	if p.Client, err = issue(dir, "client", leaf(now, ClientCN, x509.ExtKeyUsageClientAuth), ca); err != nil {
		return nil, err
	}
	if p.ForeignClient, err = issue(dir, "foreign-client", leaf(now, ClientCN, x509.ExtKeyUsageClientAuth), other); err != nil {
		return nil, err
	}
	return p, nil
}

// ForTest generates a PKI in t.TempDir and fails t on error.
func ForTest(t testing.TB) *PKI {
	t.Helper()
	p, err := Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// authority is a CA certificate with its key.
type authority struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func newCA(now time.Time, cn string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: CA key: %v", ErrGenerate, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"KioskEdge tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("%w: CA %q: %v", ErrGenerate, cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: CA %q: %v", ErrGenerate, cn, err)
	}
	return &authority{cert: cert, der: der, key: key}, nil
}

// leaf is the template of an end-entity certificate; issue fills the serial.
func leaf(now time.Time, cn string, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"KioskEdge tests"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
}

// issue gives tmpl a new key and serial, has ca sign it, and writes
// name.pem and name-key.pem.
func issue(dir, name string, tmpl *x509.Certificate, ca *authority) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("%w: %s key: %v", ErrGenerate, name, err)
	}
	if tmpl.SerialNumber, err = serialNumber(); err != nil {
		return Pair{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return Pair{}, fmt.Errorf("%w: %s certificate: %v", ErrGenerate, name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, fmt.Errorf("%w: %s key: %v", ErrGenerate, name, err)
	}
	var p Pair
	if p.CertFile, err = writeCert(dir, name+".pem", der); err != nil {
		return Pair{}, err
	}
	if p.KeyFile, err = writePEM(dir, name+"-key.pem", "PRIVATE KEY", keyDER, 0o600); err != nil {
		return Pair{}, err
	}
	return p, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("%w: serial number: %v", ErrGenerate, err)
	}
	return n.Add(n, big.NewInt(1)), nil // never zero
}

func writeCert(dir, name string, der []byte) (string, error) {
	return writePEM(dir, name, "CERTIFICATE", der, 0o644)
}

func writePEM(dir, name, typ string, der []byte, mode os.FileMode) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return "", fmt.Errorf("%w: %v", ErrGenerate, err)
	}
	return path, nil
}
