package wiegandvectors

import "testing"

func TestLoad(t *testing.T) {
	v, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Good) == 0 || len(v.Bad) == 0 || len(v.Raw) == 0 {
		t.Fatalf("empty vectors: %d good, %d bad, %d raw", len(v.Good), len(v.Bad), len(v.Raw))
	}
	lengths := map[string]int{"H10301": 26, "34bit": 34, "H10304": 37}
	for _, g := range v.Good {
		if len(Bits(g.Bits)) != lengths[g.Encoding] {
			t.Errorf("%s: %d bits for %s", g.Name, len(g.Bits), g.Encoding)
		}
	}
}
