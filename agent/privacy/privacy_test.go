package privacy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/sealed"
)

var key = bytes.Repeat([]byte{0x42}, SiteKeyLen)

func id(number string) credential.Credential {
	return credential.Credential{Kind: credential.IDCard, Reader: "kiosk-1", Number: number}
}

func TestKeyedHash(t *testing.T) {
	t.Parallel()
	h := KeyedHash(key, id("46010219900101123X"))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(h) {
		t.Fatalf("hash %q is not 32 lower-case hex digits", h)
	}
	// Pinned: the allowlist stores these, so the function must never drift.
	// HMAC-SHA256(0x42×32, "kioskedge/v1/credential\x00idcard::46010219900101123X")[:16].
	if want := pinned; h != want {
		t.Errorf("hash drifted: %s, want %s", h, want)
	}
	same := []credential.Credential{
		id("46010219900101123x"),
		id(" 46010219900101123X\n"),
		{Kind: credential.IDCard, Reader: "other-reader", Number: "46010219900101123X", Raw: []byte("ignored")},
	}
	for _, c := range same {
		if got := KeyedHash(key, c); got != h {
			t.Errorf("%v hashes to %s, want %s", c, got, h)
		}
	}
	other := bytes.Clone(key)
	other[0] ^= 1
	differ := map[string]string{
		"social security card": KeyedHash(key, credential.Credential{Kind: credential.SSCard, Number: "46010219900101123X"}),
		"encoding":             KeyedHash(key, credential.Credential{Kind: credential.IDCard, Encoding: "x", Number: "46010219900101123X"}),
		"number":               KeyedHash(key, id("460102199001011234")),
		"key":                  KeyedHash(other, id("46010219900101123X")),
		"unprefixed":           unprefixed(key, id("46010219900101123X")),
	}
	for name, got := range differ {
		if got == h {
			t.Errorf("another %s hashes alike", name)
		}
	}
}

func TestProtector(t *testing.T) {
	t.Parallel()
	priv, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProtector(key, pub)
	if err != nil {
		t.Fatal(err)
	}
	c := id("46010219900101123X")
	if p.Hash(c) != KeyedHash(key, c) || !p.CanSeal() {
		t.Error("Hash is not KeyedHash")
	}
	s, err := p.Seal([]byte(c.Number))
	if err != nil || !sealed.IsSealed(s) || strings.Contains(s, c.Number) {
		t.Fatalf("Seal = %.10q…, %v", s, err)
	}
	got, err := sealed.Open(priv, s)
	if err != nil || string(got) != c.Number {
		t.Fatalf("open: %v", err)
	}
	// Tampered, another key's, garbled.
	other, _, _ := sealed.GenerateKeyPair()
	if _, err := sealed.Open(other, s); !errors.Is(err, sealed.ErrCannotOpen) {
		t.Errorf("wrong key: %v", err)
	}
	b := []byte(s)
	b[len(b)-5] ^= 'A' ^ 'B'
	if b[len(b)-5] == s[len(s)-5] {
		b[len(b)-5] = 'A'
	}
	if _, err := sealed.Open(priv, string(b)); !errors.Is(err, sealed.ErrCannotOpen) && !errors.Is(err, sealed.ErrMalformed) {
		t.Errorf("tampered: %v", err)
	}
	if _, err := sealed.Open(priv, c.Number); !errors.Is(err, sealed.ErrMalformed) {
		t.Errorf("raw number: %v", err)
	}
	if _, err := p.Seal(make([]byte, sealed.MaxPlaintext+1)); !errors.Is(err, sealed.ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}

	noHub, err := NewProtector(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := noHub.Seal([]byte(c.Number)); s != "" || err != nil || noHub.CanSeal() {
		t.Errorf("without a hub key: %q, %v", s, err)
	}
	for _, k := range [][]byte{nil, key[:31], append(bytes.Clone(key), 0)} {
		if _, err := NewProtector(k, pub); !errors.Is(err, ErrSiteKey) {
			t.Errorf("%d-byte key: %v", len(k), err)
		}
	}
	// NewProtector copies the key.
	k := bytes.Clone(key)
	p2, _ := NewProtector(k, nil)
	k[0] ^= 1
	if p2.Hash(c) != KeyedHash(key, c) {
		t.Error("Protector shares the caller's key slice")
	}
}

func TestSiteKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "site.key")
	k, err := NewSiteKey()
	if err != nil || len(k) != SiteKeyLen {
		t.Fatal(len(k), err)
	}
	if err := WriteSiteKey(path, k); err != nil {
		t.Fatal(err)
	}
	if err := WriteSiteKey(path, k); !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwrote: %v", err)
	}
	if err := WriteSiteKey(filepath.Join(dir, "short"), k[:5]); !errors.Is(err, ErrSiteKey) {
		t.Errorf("short key written: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	got, err := LoadSiteKey(path)
	if err != nil || !bytes.Equal(got, k) {
		t.Fatalf("LoadSiteKey: %v", err)
	}
	// Group access is allowed; any access by others is not.
	for mode, ok := range map[fs.FileMode]bool{0o400: true, 0o640: true, 0o660: true, 0o604: false, 0o644: false, 0o602: false, 0o601: false} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSiteKey(path)
		if ok && err != nil || !ok && !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	secret := strings.Repeat("ab", SiteKeyLen)
	for name, content := range map[string]string{
		"empty":  "",
		"short":  secret[:62],
		"long":   secret + "ab",
		"nothex": secret[:62] + "zz",
		"two":    secret + "\n" + secret,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSiteKey(p)
		if !errors.Is(err, ErrSiteKey) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && len(content) > 8 && strings.Contains(err.Error(), content[:8]) {
			t.Errorf("%s: error shows the key: %v", name, err)
		}
	}
	p := filepath.Join(dir, "spaced")
	if err := os.WriteFile(p, []byte("  "+secret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSiteKey(p); err != nil {
		t.Errorf("whitespace around the key: %v", err)
	}
	if _, err := LoadSiteKey(dir); !errors.Is(err, ErrSiteKey) {
		t.Errorf("directory: %v", err)
	}
	if _, err := LoadSiteKey(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

// TestProtectorHashReuse: Protector.Hash reuses keyed HMAC states; every
// call, concurrent or after another credential, still equals KeyedHash.
func TestProtectorHashReuse(t *testing.T) {
	t.Parallel()
	p, err := NewProtector(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := []credential.Credential{
		id("46010219900101123X"), id("460102199001011234"),
		{Kind: credential.SSCard, Number: "46010219900101123X"},
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				c := cs[(i+w)%len(cs)]
				if got := p.Hash(c); got != KeyedHash(key, c) {
					t.Errorf("call %d: Hash differs from KeyedHash", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := p.Hash(cs[0]); got != pinned {
		t.Errorf("hash drifted after reuse: %s, want %s", got, pinned)
	}
}

// TestHasher: Hasher.Sum is KeyedHash's bytes, also for a key that is not
// SiteKeyLen long (KeyedHash does not check it either).
func TestHasher(t *testing.T) {
	t.Parallel()
	c := id("46010219900101123X")
	for _, k := range [][]byte{key, []byte("short key")} {
		h := NewHasher(k)
		for range 2 { // the second call reuses the pooled state
			sum := h.Sum(c)
			if got, want := hex.EncodeToString(sum[:]), KeyedHash(k, c); got != want {
				t.Errorf("%d-byte key: Sum %s, KeyedHash %s", len(k), got, want)
			}
			if got := h.Hash(c); got != KeyedHash(k, c) {
				t.Errorf("%d-byte key: Hash differs from KeyedHash", len(k))
			}
		}
	}
}
