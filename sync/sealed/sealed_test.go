package sealed

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const idNumber = "46010219900101123X"

func keys(t testing.TB) (*PrivateKey, *PublicKey) {
	t.Helper()
	priv, pub, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	priv, pub := keys(t)
	for _, pt := range [][]byte{nil, []byte(idNumber), bytes.Repeat([]byte{0xff}, MaxPlaintext)} {
		s, err := Seal(pub, pt)
		if err != nil {
			t.Fatal(err)
		}
		if !IsSealed(s) || strings.Contains(s, idNumber) {
			t.Fatalf("sealed form %.20q…", s)
		}
		if want := len(Prefix) + (len(pt)+overhead)*4/3; len(s) < want-1 || len(s) > want+1 {
			t.Errorf("len %d for %d bytes, want ~%d", len(s), len(pt), want)
		}
		got, err := Open(priv, s)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %d bytes, %v", len(got), err)
		}
	}
	a, _ := Seal(pub, []byte(idNumber))
	b, _ := Seal(pub, []byte(idNumber))
	if a == b {
		t.Error("sealing is deterministic; it must be randomised")
	}
	if _, err := Seal(pub, make([]byte, MaxPlaintext+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	if _, err := Seal(nil, nil); !errors.Is(err, ErrKey) {
		t.Errorf("nil key: %v", err)
	}
	if _, err := Open(nil, a); !errors.Is(err, ErrKey) {
		t.Errorf("nil private key: %v", err)
	}
}

// The format is plain RFC 9180: an independent single-shot hpke.Open with
// the documented suite and info string opens what Seal made.
func TestSuiteIsAsDocumented(t *testing.T) {
	t.Parallel()
	k, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Seal(&PublicKey{k.PublicKey()}, []byte(idNumber))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := b64().DecodeString(strings.TrimPrefix(s, "v1."))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte("kioskedge/v1/sealed"), ct)
	if err != nil || string(pt) != idNumber {
		t.Fatalf("independent open: %q, %v", pt, err)
	}
	if _, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte("kioskedge/v2/sealed"), ct); err == nil {
		t.Error("opened under another info string")
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	priv, pub := keys(t)
	other, _ := keys(t)
	s, err := Seal(pub, []byte(idNumber))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(other, s); !errors.Is(err, ErrCannotOpen) {
		t.Errorf("wrong key: %v", err)
	}
	// Flip every byte of the binary form in turn: each must fail to open.
	raw, _ := b64().DecodeString(s[len(Prefix):])
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x01
		if _, err := Open(priv, Prefix+b64().EncodeToString(bad)); !errors.Is(err, ErrCannotOpen) {
			t.Fatalf("tampered byte %d: %v", i, err)
		}
	}
	// Truncated or extended ciphertexts fail too.
	for _, bad := range [][]byte{raw[:len(raw)-1], append(bytes.Clone(raw), 0)} {
		if _, err := Open(priv, Prefix+b64().EncodeToString(bad)); !errors.Is(err, ErrCannotOpen) {
			t.Errorf("length %d: %v", len(bad), err)
		}
	}
	for _, m := range []string{
		"", "v1", "v1.", "v2." + s[3:], idNumber, "v1.!!!!", "v1." + s[3:] + "=",
		"v1." + b64().EncodeToString(make([]byte, overhead-1)),
		"v1." + strings.Repeat("A", maxEncoded()),
	} {
		_, err := Open(priv, m)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("Open(%.12q…) = %v, want ErrMalformed", m, err)
		}
		if err != nil && len(m) > 4 && strings.Contains(err.Error(), m[3:]) {
			t.Errorf("error repeats the input: %v", err)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv, pub := keys(t)
	keyPath, pubPath := filepath.Join(dir, "hub.key"), filepath.Join(dir, "hub.pub")
	if err := WritePrivateKey(keyPath, priv); err != nil {
		t.Fatal(err)
	}
	if err := WritePublicKey(pubPath, pub); err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateKey(keyPath, priv); !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwrote the private key: %v", err)
	}
	st, err := os.Stat(keyPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, %v", st.Mode(), err)
	}
	text, _ := os.ReadFile(pubPath)
	if !strings.HasPrefix(string(text), "-----BEGIN KIOSKEDGE SEALED PUBLIC KEY-----\n") {
		t.Errorf("public key file:\n%s", text)
	}
	gotPriv, err := LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	gotPub, err := LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPub.Equal(pub) || !gotPriv.Public().Equal(pub) {
		t.Fatal("keys changed through their files")
	}
	s, _ := Seal(gotPub, []byte(idNumber))
	if pt, err := Open(gotPriv, s); err != nil || string(pt) != idNumber {
		t.Fatalf("round trip through files: %v", err)
	}

	// A private key readable or writable by group or others is refused.
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o620, 0o644, 0o660} {
		if err := os.Chmod(keyPath, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadPrivateKey(keyPath); !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	if err := os.Chmod(keyPath, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(keyPath); err != nil {
		t.Errorf("mode 0400: %v", err)
	}

	// Swapped, garbled, doubled and missing files.
	write := func(name, content string, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	privText, _ := MarshalPrivateKey(priv)
	pubText := MarshalPublicKey(pub)
	if _, err := LoadPublicKey(keyPath); !errors.Is(err, ErrKey) {
		t.Errorf("private key file as public: %v", err)
	}
	if _, err := LoadPrivateKey(write("pub-as-priv", string(pubText), 0o600)); !errors.Is(err, ErrKey) {
		t.Errorf("public key file as private: %v", err)
	}
	for name, content := range map[string]string{
		"empty":   "",
		"hex":     strings.Repeat("ab", 32),
		"double":  string(pubText) + string(pubText),
		"short":   strings.Replace(string(pubText), "KIOSKEDGE SEALED PUBLIC KEY-----\n", "KIOSKEDGE SEALED PUBLIC KEY-----\nAAAA", 1),
		"headers": strings.Replace(string(pubText), "KEY-----\n", "KEY-----\nX: y\n\n", 1),
	} {
		if _, err := LoadPublicKey(write(name, content, 0o644)); !errors.Is(err, ErrKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := LoadPrivateKey(write("priv-double", string(privText)+string(privText), 0o600)); !errors.Is(err, ErrKey) {
		t.Errorf("two private keys: %v", err)
	}
	if _, err := LoadPublicKey(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if _, err := LoadPrivateKey(dir); !errors.Is(err, ErrKey) {
		t.Errorf("directory: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	priv, pub := keys(f)
	s, err := Seal(pub, []byte(idNumber))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s)
	f.Add("v1.")
	f.Add("v1.AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		pt, err := Open(priv, in)
		if err == nil {
			if in != s && string(pt) == idNumber {
				// Another encoding of the same ciphertext would be a
				// malleability bug; Strict base64 forbids it.
				t.Errorf("%q opened to the seed's plaintext", in)
			}
			return
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrCannotOpen) {
			t.Errorf("untyped error %v", err)
		}
	})
}
