package sscardvectors

import "testing"

// Every hex string decodes and every vector has a name.
func TestVectorsLoad(t *testing.T) {
	v, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Frames) == 0 || len(v.APDUs) == 0 || len(v.Responses) == 0 || len(v.TLV) == 0 || len(v.Card.EF05) == 0 {
		t.Fatal("a section is empty")
	}
	check := func(name, h string) {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("%s: %v", name, r)
			}
		}()
		Bytes(h)
	}
	for _, f := range v.Frames {
		check(f.Name, f.Hex)
		check(f.Name, f.Payload)
	}
	for _, a := range v.APDUs {
		check(a.Name, a.Hex)
	}
	for _, r := range v.Responses {
		check(r.Name, r.Hex)
		check(r.Name, r.Data)
	}
	for _, x := range v.TLV {
		check(x.Name, x.Hex)
	}
	for _, r := range append(v.Card.EF05, v.Card.EF06...) {
		check("record", r.Hex)
	}
}
