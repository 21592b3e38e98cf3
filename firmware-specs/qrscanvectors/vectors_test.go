package qrscanvectors

import "testing"

// TestWellFormed checks the file itself; whether the framer agrees is
// tested in drivers/qrscan.
func TestWellFormed(t *testing.T) {
	cases, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d cases", len(cases))
	}
	known := map[string]bool{KindLine: true, KindEmpty: true, KindGarbage: true, KindOverlong: true, KindTruncated: true}
	seen := map[string]bool{}
	for _, c := range cases {
		if c.Name == "" || seen[c.Name] {
			t.Errorf("empty or duplicate name %q", c.Name)
		}
		seen[c.Name] = true
		for _, ch := range c.Chunks {
			if _, err := ch.Bytes(); err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
		}
		for _, e := range c.Events {
			if !known[e.Kind] {
				t.Errorf("%s: unknown kind %q", c.Name, e.Kind)
			}
		}
	}
}
