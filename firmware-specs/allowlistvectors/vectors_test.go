package allowlistvectors

import (
	"crypto/sha256"
	"testing"
)

// The file decodes, every section is populated and the snapshot checksum
// matches its chunks, so a hand edit that breaks a vector shows here.
func TestLoad(t *testing.T) {
	v, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Entries) == 0 || len(v.Schedules) == 0 || len(v.Snapshot.Chunks) == 0 ||
		len(v.MalformedEntries) == 0 || len(v.MalformedChunks) == 0 {
		t.Fatalf("a section is empty: %+v", v)
	}
	h := sha256.New()
	for _, c := range v.Snapshot.Chunks {
		if string(c[:4]) != "KAC1" {
			t.Errorf("chunk magic %q", c[:4])
		}
		h.Write(c)
	}
	if string(h.Sum(nil)) != string(v.Snapshot.SHA256) {
		t.Error("snapshot sha256 does not match its chunks")
	}
	for _, e := range v.Entries {
		if len(e.Key) != 16 {
			t.Errorf("%s: key of %d bytes", e.Name, len(e.Key))
		}
	}
}
