package sealed

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed value; the "v1" is the format version.
const Prefix = "v1."

// Info is the HPKE info string every value is sealed under.
const Info = "kioskedge/v1/sealed"

// MaxPlaintext bounds what Seal accepts and, with the overhead, what Open
// reads; sealed values are single fields of a record body (64 KiB at most).
const MaxPlaintext = 16 << 10

const (
	encLen   = 32 // X25519 encapsulated key
	tagLen   = 16 // Poly1305
	overhead = encLen + tagLen
)

// Errors returned by this package. Open's errors wrap ErrMalformed or
// ErrCannotOpen, so callers can tell bad input from a key mismatch.
var (
	// ErrMalformed: the string is not a sealed value of a version this
	// package reads (wrong prefix, bad base64, too short or too long).
	ErrMalformed = errors.New("sealed: malformed value")
	// ErrCannotOpen: the value is well formed but does not decrypt with
	// this key: it was sealed to another key or altered after sealing.
	ErrCannotOpen = errors.New("sealed: wrong key or tampered value")
	// ErrTooLarge: Seal was given more than MaxPlaintext bytes.
	ErrTooLarge = errors.New("sealed: plaintext too large")
	// ErrKey: a key is missing, not an X25519 key, or its file is unusable.
	ErrKey = errors.New("sealed: bad key")
)

func kem() hpke.KEM         { return hpke.DHKEM(ecdh.X25519()) }
func kdf() hpke.KDF         { return hpke.HKDFSHA256() }
func aead() hpke.AEAD       { return hpke.ChaCha20Poly1305() }
func info() []byte          { return []byte(Info) }
func b64() *base64.Encoding { return base64.RawURLEncoding }
func maxEncoded() int       { return b64().EncodedLen(MaxPlaintext+overhead) + len(Prefix) }
func errf(base error, format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{base}, a...)...)
}

// PublicKey is the hub's public key, which agents seal to.
type PublicKey struct{ k hpke.PublicKey }

// PrivateKey is the hub's private key, which opens sealed values.
type PrivateKey struct{ k hpke.PrivateKey }

// GenerateKeyPair returns a new random X25519 key pair. It fails only if
// the system's random source does.
func GenerateKeyPair() (*PrivateKey, *PublicKey, error) {
	k, err := kem().GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("sealed: generating key: %w", err)
	}
	return &PrivateKey{k}, &PublicKey{k.PublicKey()}, nil
}

// ParsePublicKey returns the public key whose 32 raw bytes are b, or an
// error wrapping ErrKey.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	k, err := kem().NewPublicKey(b)
	if err != nil {
		return nil, errf(ErrKey, "public key: %v", err)
	}
	return &PublicKey{k}, nil
}

// ParsePrivateKey returns the private key whose 32 raw bytes are b, or an
// error wrapping ErrKey.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	k, err := kem().NewPrivateKey(b)
	if err != nil {
		return nil, errf(ErrKey, "private key: %v", err)
	}
	return &PrivateKey{k}, nil
}

// Bytes returns the key's 32 raw bytes.
func (p *PublicKey) Bytes() []byte { return p.k.Bytes() }

// Equal reports whether p and q are the same key.
func (p *PublicKey) Equal(q *PublicKey) bool {
	return p != nil && q != nil && string(p.Bytes()) == string(q.Bytes())
}

// Public returns the public key that goes with k.
func (k *PrivateKey) Public() *PublicKey { return &PublicKey{k.k.PublicKey()} }

// Seal encrypts plaintext to pub and returns its text form ("v1.…"). It
// returns an error wrapping ErrKey for a nil key, ErrTooLarge over
// MaxPlaintext, or the random source's error.
func Seal(pub *PublicKey, plaintext []byte) (string, error) {
	if pub == nil || pub.k == nil {
		return "", errf(ErrKey, "no public key")
	}
	if len(plaintext) > MaxPlaintext {
		return "", errf(ErrTooLarge, "%d bytes, at most %d", len(plaintext), MaxPlaintext)
	}
	ct, err := hpke.Seal(pub.k, kdf(), aead(), info(), plaintext)
	if err != nil {
		return "", fmt.Errorf("sealed: seal: %w", err)
	}
	return Prefix + b64().EncodeToString(ct), nil
}

// IsSealed reports whether s looks like a sealed value (has the "v1."
// prefix); Open decides whether it really is one.
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// Open decrypts a value made by Seal with priv's public key. It returns an
// error wrapping ErrMalformed when s is not a well-formed sealed value,
// ErrCannotOpen when it does not decrypt with priv (another key, or
// altered), and ErrKey for a nil key. The error never contains s.
func Open(priv *PrivateKey, s string) ([]byte, error) {
	if priv == nil || priv.k == nil {
		return nil, errf(ErrKey, "no private key")
	}
	if !IsSealed(s) {
		return nil, errf(ErrMalformed, "no %q prefix", Prefix)
	}
	if len(s) > maxEncoded() {
		return nil, errf(ErrMalformed, "%d characters, at most %d", len(s), maxEncoded())
	}
	ct, err := b64().Strict().DecodeString(s[len(Prefix):])
	if err != nil {
		return nil, errf(ErrMalformed, "not base64url")
	}
	if len(ct) < overhead {
		return nil, errf(ErrMalformed, "%d bytes, at least %d", len(ct), overhead)
	}
	pt, err := hpke.Open(priv.k, kdf(), aead(), info(), ct)
	if err != nil {
		return nil, ErrCannotOpen
	}
	return pt, nil
}
