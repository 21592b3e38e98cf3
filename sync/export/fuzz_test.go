package export

import (
	"bytes"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/exportvectors"
)

// FuzzParse feeds arbitrary bytes to the verifier, seeded with a file of
// this package's writer and the spec vectors: it must never panic,
// and whatever it accepts must be signed by the test CA's box and keep the
// header's promise.
func FuzzParse(f *testing.F) {
	codec := newCodec(f)
	ca := newTestCA(f, "hub CA")
	id := ca.issue(f, "gate-17", "ecdsa")
	good := writeFile(f, codec, header("gate-17", 1, 12, 11), id, entries(f, 1, 2, 3, 5), entries(f, seqRange(6, 12)...))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(magic + "\x01"))
	v, _ := loadVectors(f)
	for _, c := range v.Cases {
		b, err := exportvectors.File(c.File)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := parse(bytes.NewReader(data), VerifyOptions{Roots: ca.pool, Codec: codec})
		if err != nil {
			return
		}
		if file.Leaf.Subject.CommonName != file.Header.Agent || file.Header.Count == 0 {
			t.Fatalf("accepted a file with header %+v", file.Header)
		}
	})
}
