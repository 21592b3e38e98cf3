package commandvectors

import (
	"crypto/ed25519"
	"testing"
)

// The file decodes, the keys match their seeds, every case names a code,
// and every ok case says what it executes.
func TestLoad(t *testing.T) {
	v, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if string(ed25519.NewKeyFromSeed(v.Seed).Public().(ed25519.PublicKey)) != string(v.PublicKey) {
		t.Error("public_key does not match seed")
	}
	if string(ed25519.NewKeyFromSeed(v.OtherSeed).Public().(ed25519.PublicKey)) != string(v.OtherPublicKey) {
		t.Error("other_public_key does not match other_seed")
	}
	if v.Agent == "" || v.Now.IsZero() || v.MaxHorizon() <= 0 || v.Skew() <= 0 || len(v.Sequence) < 30 {
		t.Fatalf("header incomplete or sequence short: %d cases", len(v.Sequence))
	}
	for _, c := range v.Sequence {
		if c.Code == "" || (c.Code == "ok") != (c.Executes != nil) {
			t.Errorf("%s: code %q, executes %v", c.Name, c.Code, c.Executes)
		}
	}
}
