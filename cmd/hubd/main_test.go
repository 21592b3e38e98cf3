package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/sync/sealed"
)

func TestRunRejectsBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "-broker is required"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "extra"}, "unexpected arguments"},
		{[]string{"-nosuch"}, "flag provided but not defined"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-log-level", "loud"}, "-log-level"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", t.TempDir() + "/h.db", "-http", ""}, "plaintext"},
	} {
		var stderr bytes.Buffer
		err := run(tt.args, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.want) {
			t.Errorf("run(%q) = %v (stderr %q), want %q", tt.args, err, stderr.String(), tt.want)
		}
	}
	if err := run([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestKeygenAndSealKeyFlags(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"keygen", "-out", dir}, &out); err != nil {
		t.Fatal(err)
	}
	keyPath, pubPath := filepath.Join(dir, "hub.key"), filepath.Join(dir, "hub.pub")
	priv, err := sealed.LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sealed.LoadPublicKey(pubPath)
	if err != nil || !priv.Public().Equal(pub) {
		t.Fatalf("hub.pub does not match hub.key: %v", err)
	}
	if st, _ := os.Stat(keyPath); st.Mode().Perm() != 0o600 {
		t.Errorf("hub.key mode %v", st.Mode())
	}
	if err := run([]string{"keygen", "-out", dir}, &out); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Errorf("second keygen: %v", err)
	}
	if err := run([]string{"keygen"}, &out); err == nil {
		t.Error("keygen without -out")
	}
	again, err := sealed.LoadPrivateKey(keyPath)
	if err != nil || !again.Public().Equal(pub) {
		t.Fatal("the key changed")
	}

	base := []string{"-broker", "tcp://127.0.0.1:1", "-db", filepath.Join(dir, "h.db"), "-http", ""}
	if err := run(append(base, "-reveal-personal-data"), &out); err == nil || !strings.Contains(err.Error(), "needs -seal-key") {
		t.Errorf("reveal without a key: %v", err)
	}
	if err := os.Chmod(keyPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := run(append(base, "-seal-key", keyPath), &out); !errors.Is(err, sealed.ErrKeyPermissions) {
		t.Errorf("group-readable key: %v", err)
	}
	if err := run(append(base, "-seal-key", pubPath), &out); !errors.Is(err, sealed.ErrKey) && !errors.Is(err, sealed.ErrKeyPermissions) {
		t.Errorf("public key as -seal-key: %v", err)
	}
}

func TestMaskPersonal(t *testing.T) {
	for _, tc := range []struct{ field, in, want string }{
		{"number_sealed", "46010219900101123X", "4601**********123X"},
		{"name_sealed", "张三丰", "张**"},
		{"holder_name_sealed", "Ada Lovelace", "A***********"},
	} {
		if got := maskPersonal(tc.field, tc.in); got != tc.want {
			t.Errorf("maskPersonal(%q, %q) = %q, want %q", tc.field, tc.in, got, tc.want)
		}
	}
}
