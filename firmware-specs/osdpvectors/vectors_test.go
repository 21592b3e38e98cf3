package osdpvectors

import "testing"

// The file decodes and every section is populated; packet lengths agree
// with their LEN field, so a hand edit that breaks a vector shows here.
func TestLoad(t *testing.T) {
	v, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.CRC16) == 0 || len(v.Checksum) == 0 || len(v.Packets) == 0 || len(v.Malformed) == 0 ||
		len(v.Secure) == 0 || len(v.SCBKFromMaster) == 0 {
		t.Fatalf("a section is empty: %+v", v)
	}
	if v.CRC16[0].CRC != 0xE5CC {
		t.Errorf("CRC-16/AUG-CCITT check value = %#04x, want 0xe5cc", v.CRC16[0].CRC)
	}
	for _, p := range v.Packets {
		if p.Hex[0] != 0x53 || int(p.Hex[2])|int(p.Hex[3])<<8 != len(p.Hex) {
			t.Errorf("%s: SOM or LEN wrong in %x", p.Name, p.Hex)
		}
	}
	for _, s := range v.Secure {
		for i, m := range s.Messages {
			if int(m.Hex[2])|int(m.Hex[3])<<8 != len(m.Hex) {
				t.Errorf("%s message %d: LEN wrong", s.Name, i)
			}
		}
	}
}
