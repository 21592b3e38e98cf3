package hubvectors

import "testing"

// TestVectorsWellFormed checks the files themselves: they parse, every hex
// string decodes, names are unique and error classes are known. Whether the
// codec agrees with them is tested in sync/wire.
func TestVectorsWellFormed(t *testing.T) {
	recs, err := LoadRecords()
	if err != nil {
		t.Fatal(err)
	}
	bats, err := LoadBatches()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs.Valid) == 0 || len(recs.Invalid) == 0 || len(bats.Valid) == 0 || len(bats.Invalid) == 0 {
		t.Fatal("a vector list is empty")
	}
	known := map[string]bool{ErrShort: true, ErrVersion: true, ErrMalformed: true, ErrEmpty: true, ErrTooBig: true}
	seen := map[string]bool{}
	check := func(file, name, h string) {
		t.Helper()
		if name == "" || seen[file+"/"+name] {
			t.Errorf("%s: empty or duplicate name %q", file, name)
		}
		seen[file+"/"+name] = true
		if _, err := Bytes(h); err != nil {
			t.Errorf("%s/%s: %v", file, name, err)
		}
	}
	for _, v := range recs.Valid {
		check("records", v.Name, v.Hex)
	}
	for _, v := range bats.Valid {
		check("batches", v.Name, v.Hex)
		for _, e := range v.Entries {
			if _, err := Bytes(e.Hex); err != nil {
				t.Errorf("batches/%s: entry %d: %v", v.Name, e.Seq, err)
			}
		}
	}
	for file, list := range map[string][]Invalid{"records": recs.Invalid, "batches": bats.Invalid} {
		for _, v := range list {
			check(file, v.Name, v.Hex)
			if !known[v.Error] {
				t.Errorf("%s/%s: unknown error class %q", file, v.Name, v.Error)
			}
		}
	}
}
