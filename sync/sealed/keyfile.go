package sealed

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// PEM block types of the key files.
const (
	PrivateKeyPEMType = "KIOSKEDGE SEALED PRIVATE KEY"
	PublicKeyPEMType  = "KIOSKEDGE SEALED PUBLIC KEY"
)

// maxKeyFile bounds what the loaders read; a key file is ~150 bytes.
const maxKeyFile = 4 << 10

// ErrKeyPermissions: a private key file is accessible to group or others.
var ErrKeyPermissions = errors.New("sealed: private key file is accessible to group or others")

// MarshalPublicKey returns pub as a PEM block (the public key file's
// content).
func MarshalPublicKey(pub *PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: pub.Bytes()})
}

// MarshalPrivateKey returns priv as a PEM block (the private key file's
// content). It is the secret itself: never log it.
func MarshalPrivateKey(priv *PrivateKey) ([]byte, error) {
	b, err := priv.k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("sealed: private key bytes: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: b}), nil
}

// WritePrivateKey creates path with mode 0600 and writes priv to it. It
// refuses to overwrite an existing file (the error wraps fs.ErrExist).
func WritePrivateKey(path string, priv *PrivateKey) error {
	b, err := MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	return writeNew(path, b, 0o600)
}

// WritePublicKey creates path with mode 0644 and writes pub to it. It
// refuses to overwrite an existing file (the error wraps fs.ErrExist).
func WritePublicKey(path string, pub *PublicKey) error {
	return writeNew(path, MarshalPublicKey(pub), 0o644)
}

func writeNew(path string, b []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("sealed: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		// The write error is the one to report.
		_ = f.Close()
		return fmt.Errorf("sealed: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		// The sync error is the one to report.
		_ = f.Close()
		return fmt.Errorf("sealed: syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sealed: closing %s: %w", path, err)
	}
	return nil
}

// LoadPublicKey reads a public key file written by WritePublicKey. It
// returns the open error, or an error wrapping ErrKey when the file is not
// exactly one PEM block of type PublicKeyPEMType holding a valid key.
func LoadPublicKey(path string) (*PublicKey, error) {
	b, err := readKeyFile(path, false)
	if err != nil {
		return nil, err
	}
	raw, err := decodePEM(path, b, PublicKeyPEMType)
	if err != nil {
		return nil, err
	}
	return ParsePublicKey(raw)
}

// LoadPrivateKey reads a private key file written by WritePrivateKey. It
// returns the open error; an error wrapping ErrKeyPermissions when the file
// grants any permission to group or others (mode & 0077 != 0), checked
// before the key is read; or an error wrapping ErrKey when the file is not
// exactly one PEM block of type PrivateKeyPEMType holding a valid key.
func LoadPrivateKey(path string) (*PrivateKey, error) {
	b, err := readKeyFile(path, true)
	if err != nil {
		return nil, err
	}
	raw, err := decodePEM(path, b, PrivateKeyPEMType)
	if err != nil {
		return nil, err
	}
	return ParsePrivateKey(raw)
}

func readKeyFile(path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, errf(ErrKey, "%s is not a regular file", path)
	}
	if private && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 it)", ErrKeyPermissions, path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("sealed: reading %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, errf(ErrKey, "%s is over %d bytes; not a key file", path, maxKeyFile)
	}
	return b, nil
}

func decodePEM(path string, b []byte, typ string) ([]byte, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, errf(ErrKey, "%s: no PEM block", path)
	}
	if block.Type != typ {
		return nil, errf(ErrKey, "%s: PEM type %q, want %q", path, block.Type, typ)
	}
	if len(block.Headers) != 0 {
		return nil, errf(ErrKey, "%s: unexpected PEM headers", path)
	}
	if b, _ := pem.Decode(rest); b != nil {
		return nil, errf(ErrKey, "%s: more than one PEM block", path)
	}
	return block.Bytes, nil
}
