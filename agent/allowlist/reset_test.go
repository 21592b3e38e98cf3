package allowlist

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenOrResetMovesUnreadableFilesAside(t *testing.T) {
	for name, damage := range map[string]func(path string) error{
		"not bbolt": func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("garbage ", 2000)), 0o600) },
		"truncated": func(p string) error { return os.Truncate(p, 1000) },
		"meta pages zeroed": func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(make([]byte, 8192), 0)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			a, path := openTemp(t)
			loadSnapshot(t, a, 3, testEntries(50, 1, 0), 20)
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if err := damage(path); err != nil {
				t.Fatal(err)
			}
			b, reset, err := OpenOrReset(path, Options{})
			if err != nil {
				t.Fatalf("OpenOrReset: %v", err)
			}
			defer b.Close()
			if reset == nil || reset.Err == nil {
				t.Fatal("no Reset reported for a damaged file")
			}
			if b.Version() != 0 || b.Count() != 0 {
				t.Fatalf("fresh list at version %d with %d entries", b.Version(), b.Count())
			}
			if _, err := os.Stat(reset.MovedTo); err != nil || filepath.Dir(reset.MovedTo) != filepath.Dir(path) {
				t.Fatalf("damaged file not kept beside the list: %q (%v)", reset.MovedTo, err)
			}
		})
	}
}

func TestOpenOrResetKeepsAGoodFileAndALockedOne(t *testing.T) {
	a, path := openTemp(t)
	loadSnapshot(t, a, 3, testEntries(10, 1, 0), 20)
	// Locked by a (this process holds it open): not reset, an error.
	if _, reset, err := OpenOrReset(path, Options{Timeout: 50e6}); err == nil || reset != nil {
		t.Fatalf("locked file: reset %v, err %v; want the lock error and no reset", reset, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, reset, err := OpenOrReset(path, Options{})
	if err != nil || reset != nil {
		t.Fatalf("good file: reset %v, err %v", reset, err)
	}
	defer b.Close()
	if b.Version() != 3 {
		t.Fatalf("version %d, want 3", b.Version())
	}
	if matches, _ := filepath.Glob(path + ".corrupt-*"); len(matches) != 0 {
		t.Fatalf("good file moved: %v", matches)
	}

}
