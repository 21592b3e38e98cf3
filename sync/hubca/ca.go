package hubca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"

	"github.com/kioskedge/kioskedge/sync/internal/atomicfile"
)

// Errors. Enrolment refusals wrap one of the Err* below that Code maps to
// a wire code.
var (
	// ErrExists is returned by Init when the directory already holds a CA.
	ErrExists = errors.New("hubca: a CA already exists there")
	// ErrKeyMode is returned by Open when ca.key is readable by group or
	// others.
	ErrKeyMode = errors.New("hubca: ca.key is readable by others (chmod 600 it)")
	// ErrBadCSR: the request is not a PEM CSR signed by its own key, names
	// another agent or an invalid one, or uses an unsupported key.
	ErrBadCSR = errors.New("hubca: bad certificate request")
	// ErrTokenUnknown: no such claim token (or one for another agent).
	ErrTokenUnknown = errors.New("hubca: claim token unknown")
	// ErrTokenUsed: the claim token was already redeemed.
	ErrTokenUsed = errors.New("hubca: claim token already used")
	// ErrTokenExpired: the claim token's time is over.
	ErrTokenExpired = errors.New("hubca: claim token expired")
	// ErrAgentTaken: the agent already has a live certificate and the token
	// is not a re-enrolment token for it.
	ErrAgentTaken = errors.New("hubca: agent already has a live certificate")
	// ErrOptions is returned for invalid arguments.
	ErrOptions = errors.New("hubca: invalid options")
)

// Code returns the wire error code for err (enrolment.md §5):
// wire.EnrolInternal for anything that is not a refusal.
func Code(err error) string {
	switch {
	case errors.Is(err, ErrTokenUnknown):
		return wire.EnrolTokenUnknown
	case errors.Is(err, ErrTokenUsed):
		return wire.EnrolTokenUsed
	case errors.Is(err, ErrTokenExpired):
		return wire.EnrolTokenExpired
	case errors.Is(err, ErrBadCSR):
		return wire.EnrolBadCSR
	case errors.Is(err, ErrAgentTaken):
		return wire.EnrolAgentTaken
	}
	return wire.EnrolInternal
}

// File names in a CA directory.
const (
	KeyFile   = "ca.key"
	CertFile  = "ca.pem"
	StateFile = "state.json"
	lockFile  = "state.lock"
)

// Defaults.
const (
	DefaultValidity   = 2 * 365 * 24 * time.Hour  // box certificates
	DefaultCAValidity = 10 * 365 * 24 * time.Hour // the CA itself
)

// Options configure Init and Open. Zero fields take the defaults.
type Options struct {
	// Name is the CA's common name (Init only) ["KioskEdge box CA"].
	Name string
	// Validity of the box certificates issued [DefaultValidity].
	Validity time.Duration
	// CAValidity of the CA certificate (Init only) [DefaultCAValidity].
	CAValidity time.Duration
	// Now is the clock [time.Now].
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "KioskEdge box CA"
	}
	if o.Validity <= 0 {
		o.Validity = DefaultValidity
	}
	if o.CAValidity <= 0 {
		o.CAValidity = DefaultCAValidity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// CA is an opened CA directory. Its methods are safe for concurrent use,
// and for use by several processes on one directory.
type CA struct {
	dir     string
	opts    Options
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	mu      sync.Mutex // serialises this process's state changes; state.lock the processes'
}

// Init creates a CA in dir (created 0700 if missing): a new P-256 key in
// ca.key (0600), a self-signed certificate in ca.pem and an empty state.
// It returns ErrExists (wrapped, naming the file) if ca.key or ca.pem is
// already there, and never overwrites either.
func Init(dir string, opts Options) error {
	opts.defaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("hubca: %w", err)
	}
	for _, f := range []string{KeyFile, CertFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, filepath.Join(dir, f))
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("hubca: key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := opts.Now()
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("hubca: %w", err)
	}
	ski := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.Name, Organization: []string{"KioskEdge"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(opts.CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("hubca: self-signing: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("hubca: %w", err)
	}
	if err := writeExcl(filepath.Join(dir, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := writeExcl(filepath.Join(dir, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return syncDir(dir)
}

// Open loads the CA in dir. It returns ErrKeyMode for a ca.key readable by
// group or others, and an error naming the file for a missing or
// unreadable ca.key or ca.pem, or a key that does not match the
// certificate.
func Open(dir string, opts Options) (*CA, error) {
	opts.defaults()
	keyPath := filepath.Join(dir, KeyFile)
	st, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("hubca: %w (run hubd ca init -dir %s first)", err, dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s", ErrKeyMode, keyPath)
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("hubca: %w", err)
	}
	blk, _ := pem.Decode(kb)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("hubca: %s holds no PEM PRIVATE KEY", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("hubca: %s: %w", keyPath, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("hubca: %s is not an ECDSA key", keyPath)
	}
	certPath := filepath.Join(dir, CertFile)
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("hubca: %w", err)
	}
	cblk, _ := pem.Decode(cb)
	if cblk == nil || cblk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("hubca: %s holds no PEM CERTIFICATE", certPath)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("hubca: %s: %w", certPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("hubca: %s does not match %s", keyPath, certPath)
	}
	return &CA{dir: dir, opts: opts, cert: cert, certPEM: pem.EncodeToMemory(cblk), key: key}, nil
}

// CertPEM returns the CA certificate, PEM.
func (c *CA) CertPEM() []byte { return append([]byte(nil), c.certPEM...) }

// ParseCSR parses a PEM certificate request and checks it (enrolment.md
// §3): its signature is by its own key, the key is ECDSA P-256 or P-384 or
// Ed25519, and its common name is a valid agent id equal to agent (any
// agent when agent is ""). It returns the agent id, or an error wrapping
// ErrBadCSR.
func ParseCSR(csrPEM []byte, agent string) (*x509.CertificateRequest, error) {
	blk, _ := pem.Decode(csrPEM)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: not a PEM CERTIFICATE REQUEST", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: not signed by its own key: %v", ErrBadCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: ECDSA curve %s (want P-256 or P-384)", ErrBadCSR, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: key type %T (want ECDSA P-256)", ErrBadCSR, csr.PublicKey)
	}
	cn := csr.Subject.CommonName
	if err := wire.ValidateID("agent id", cn); err != nil {
		return nil, fmt.Errorf("%w: common name: %v", ErrBadCSR, err)
	}
	if agent != "" && cn != agent {
		return nil, fmt.Errorf("%w: names agent %q, the request says %q", ErrBadCSR, cn, agent)
	}
	return csr, nil
}

// sign issues the box certificate for a checked CSR.
func (c *CA) sign(csr *x509.CertificateRequest, now time.Time) (*x509.Certificate, []byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(c.opts.Validity)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: csr.Subject.CommonName, Organization: []string{"KioskEdge box"}},
		NotBefore:             now.Add(-5 * time.Minute), // a box clock a little behind still accepts it
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        c.cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, crypto.Signer(c.key))
	if err != nil {
		return nil, nil, fmt.Errorf("hubca: signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("hubca: %w", err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("hubca: serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

func writeExcl(path string, b []byte, mode os.FileMode) error {
	if err := atomicfile.WriteNew(path, b, mode); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
		return fmt.Errorf("hubca: writing %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("hubca: syncing %s: %w", dir, err)
	}
	return nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("hubca: no PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("hubca: %w", err)
	}
	return cert, nil
}
