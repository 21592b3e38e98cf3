package localapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrTokenFile is wrapped by every LoadOrCreateToken failure.
var ErrTokenFile = errors.New("localapi: token file")

// LoadOrCreateToken returns the bearer token kept in path. When path does
// not exist it creates it (and its directory, mode 0700) with mode 0600
// holding 32 random bytes as 64 hex digits. An existing file that group
// or others may access (mode & 0077 != 0), that is not a regular file, or
// that holds fewer than 32 characters is refused with an error wrapping
// ErrTokenFile; the token itself is never put in an error.
func LoadOrCreateToken(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("%w: %v", ErrTokenFile, err)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24 panics instead)
	tok := hex.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, werr := f.WriteString(tok + "\n")
		serr := f.Sync()
		if cerr := f.Close(); werr == nil && serr == nil && cerr == nil {
			return tok, nil
		} else {
			_ = os.Remove(path) // a half-written token file must not be found next start
			return "", fmt.Errorf("%w: %s: writing: %v", ErrTokenFile, path, errors.Join(werr, serr, cerr))
		}
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("%w: %v", ErrTokenFile, err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrTokenFile, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrTokenFile, path)
	}
	if p := st.Mode().Perm(); p&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %#o; it must not be readable by group or others (chmod 600)", ErrTokenFile, path, p)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrTokenFile, err)
	}
	tok = strings.TrimSpace(string(raw))
	if len(tok) < 32 || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%w: %s: want at least 32 characters without spaces", ErrTokenFile, path)
	}
	return tok, nil
}
