package privacy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/sealed"
)

// SiteKeyLen is the site key's length in bytes.
const SiteKeyLen = 32

// HashPrefix separates credential hashes from any other use of the site
// key; it is part of the hashed input.
const HashPrefix = "kioskedge/v1/credential\x00"

// HashLen is the keyed hash's length in bytes (twice that in hex digits).
const HashLen = 16

// Errors returned by this package.
var (
	// ErrSiteKey: the site key is missing, not 64 hex digits, or the
	// wrong length.
	ErrSiteKey = errors.New("privacy: bad site key")
	// ErrKeyPermissions: the site key file grants access to others.
	ErrKeyPermissions = errors.New("privacy: site key file is accessible to others")
)

// KeyedHash returns the keyed hash of c under siteKey: the first 16 bytes
// of HMAC-SHA256(siteKey, HashPrefix + c.Normalized()) as 32 lower-case
// hex digits. The same card read twice, and an ID number ending in 'x' or
// 'X', hash alike; another kind, encoding or key hashes differently. It
// never fails; callers check the key's length (NewProtector does).
func KeyedHash(siteKey []byte, c credential.Credential) string {
	return hexHash(keyedSum(hmac.New(sha256.New, siteKey), c))
}

// keyedSum is the keyed hash's bytes with m, a fresh or Reset
// HMAC-SHA256 under the site key.
func keyedSum(m hash.Hash, c credential.Credential) [HashLen]byte {
	// hash.Hash's Write never returns an error.
	_, _ = io.WriteString(m, HashPrefix)
	_, _ = io.WriteString(m, c.Normalized())
	var sum [sha256.Size]byte
	var out [HashLen]byte
	copy(out[:], m.Sum(sum[:0]))
	return out
}

func hexHash(h [HashLen]byte) string {
	var out [2 * HashLen]byte
	hex.Encode(out[:], h[:])
	return string(out[:])
}

// Hasher computes keyed hashes under one site key, reusing HMAC states
// keyed once, so a call does not set up the key again. It is safe for
// concurrent use.
type Hasher struct {
	key  []byte
	macs sync.Pool // of hash.Hash: HMAC-SHA256 under key, Reset
}

// NewHasher returns a Hasher for siteKey, which it copies. Like KeyedHash
// it does not check the key's length.
func NewHasher(siteKey []byte) *Hasher {
	return &Hasher{key: append([]byte(nil), siteKey...)}
}

// Sum returns the keyed hash's HashLen bytes (KeyedHash is their hex).
func (h *Hasher) Sum(c credential.Credential) [HashLen]byte {
	m, _ := h.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, h.key)
	}
	s := keyedSum(m, c)
	m.Reset()
	h.macs.Put(m)
	return s
}

// Hash returns KeyedHash(siteKey, c).
func (h *Hasher) Hash(c credential.Credential) string { return hexHash(h.Sum(c)) }

// NewSiteKey returns SiteKeyLen random bytes, or the random source's error.
func NewSiteKey() ([]byte, error) {
	k := make([]byte, SiteKeyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	return k, nil
}

// WriteSiteKey creates path with mode 0600 and writes key as 64 hex digits
// and a newline. It refuses to overwrite an existing file (the error wraps
// fs.ErrExist) and a key of the wrong length (ErrSiteKey).
func WriteSiteKey(path string, key []byte) error {
	if len(key) != SiteKeyLen {
		return fmt.Errorf("%w: %d bytes, want %d", ErrSiteKey, len(key), SiteKeyLen)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("privacy: %w", err)
	}
	if _, err := io.WriteString(f, hex.EncodeToString(key)+"\n"); err != nil {
		// The write error is the one to report.
		_ = f.Close()
		return fmt.Errorf("privacy: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		// The sync error is the one to report.
		_ = f.Close()
		return fmt.Errorf("privacy: syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("privacy: closing %s: %w", path, err)
	}
	return nil
}

// LoadSiteKey reads the site key file at path: 64 hex digits, whitespace
// around them ignored. It returns the open error; an error wrapping
// ErrKeyPermissions when the file grants any permission to others (mode &
// 0007 != 0; group access is allowed, for a service group), checked before
// the key is read; or one wrapping ErrSiteKey for anything but a regular
// file holding exactly 32 bytes in hex. Errors never contain the key.
func LoadSiteKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrSiteKey, path)
	}
	if perm := st.Mode().Perm(); perm&0o007 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o (chmod o-rwx it)", ErrKeyPermissions, path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("privacy: reading %s: %w", path, err)
	}
	text := strings.TrimSpace(string(b))
	if len(text) != 2*SiteKeyLen {
		return nil, fmt.Errorf("%w: %s does not hold %d hex digits", ErrSiteKey, path, 2*SiteKeyLen)
	}
	key, err := hex.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not hex", ErrSiteKey, path)
	}
	return key, nil
}

// Protector hashes and seals credentials for records with one site key and,
// optionally, the hub's public key. It is safe for concurrent use.
type Protector struct {
	hasher *Hasher
	hubPub *sealed.PublicKey
}

// NewProtector returns a Protector hashing with siteKey (SiteKeyLen bytes;
// otherwise an error wrapping ErrSiteKey) and sealing to hubPub, which may
// be nil: Seal then returns "". It copies siteKey.
func NewProtector(siteKey []byte, hubPub *sealed.PublicKey) (*Protector, error) {
	if len(siteKey) != SiteKeyLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrSiteKey, len(siteKey), SiteKeyLen)
	}
	return &Protector{hasher: NewHasher(siteKey), hubPub: hubPub}, nil
}

// Hash returns KeyedHash(siteKey, c), with a Hasher's reused HMAC states.
func (p *Protector) Hash(c credential.Credential) string { return p.hasher.Hash(c) }

// CanSeal reports whether a hub key is configured.
func (p *Protector) CanSeal() bool { return p.hubPub != nil }

// Seal returns raw sealed to the hub's public key ("v1.…", hub-protocol.md
// §4.4), or "" and nil when no hub key is configured. Errors (raw over
// sealed.MaxPlaintext, a failing random source) wrap sync/sealed's and
// never contain raw.
func (p *Protector) Seal(raw []byte) (string, error) {
	if p.hubPub == nil {
		return "", nil
	}
	return sealed.Seal(p.hubPub, raw)
}
