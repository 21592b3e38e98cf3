package exportvectors

import "testing"

func TestLoadFindsEveryFile(t *testing.T) {
	v, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) == 0 || v.Agent == "" {
		t.Fatalf("vectors %+v", v)
	}
	for _, name := range append([]string{v.CA}, func() (fs []string) {
		for _, c := range v.Cases {
			fs = append(fs, c.File)
		}
		return fs
	}()...) {
		if b, err := File(name); err != nil || len(b) == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}
