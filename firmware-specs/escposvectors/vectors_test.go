package escposvectors

import "testing"

// TestWellFormed checks the files; agreement with the encoder and decoder
// is tested in drivers/escpos, with the simulator in testhw/escpossim.
func TestWellFormed(t *testing.T) {
	cmds, err := LoadCommands()
	if err != nil {
		t.Fatal(err)
	}
	st, err := LoadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) < 20 || len(st) < 15 {
		t.Fatalf("%d commands, %d status bytes", len(cmds), len(st))
	}
	seen := map[string]bool{}
	for _, c := range cmds {
		if seen[c.Name] {
			t.Errorf("duplicate %s", c.Name)
		}
		seen[c.Name] = true
		if _, err := Bytes(c.Hex); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	for _, s := range st {
		if b, err := Bytes(s.Byte); err != nil || len(b) != 1 || s.N < 1 || s.N > 4 {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}
