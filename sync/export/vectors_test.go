package export

import (
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/exportvectors"
	"github.com/kioskedge/kioskedge/sync/wire"
)

var expectErr = map[string]error{
	"checksum": ErrChecksum, "truncated": ErrTruncated, "format": ErrFormat, "sequence": ErrSequence,
	"signature": ErrSignature, "untrusted": ErrUntrusted, "agent": ErrAgent,
}

func loadVectors(t testing.TB) (exportvectors.Vectors, *x509.CertPool) {
	t.Helper()
	v, err := exportvectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := exportvectors.File(v.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA in the vectors")
	}
	return v, pool
}

// The verifier against files written from the spec by another
// implementation (firmware-specs/exportvectors).
func TestSpecVectors(t *testing.T) {
	v, pool := loadVectors(t)
	codec := newCodec(t)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			data, err := exportvectors.File(c.File)
			if err != nil {
				t.Fatal(err)
			}
			f, err := openBytes(t, data, pool, codec)
			if c.Expect != "ok" {
				want, known := expectErr[c.Expect]
				if !known {
					t.Fatalf("vector expects %q, unknown here", c.Expect)
				}
				if !errors.Is(err, want) {
					t.Fatalf("%s: got %v, want %v", c.Note, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", c.Note, err)
			}
			if f.Header.Agent != v.Agent {
				t.Fatalf("agent %q", f.Header.Agent)
			}
			var seqs []uint64
			if err := f.Batches(func(b wire.Batch) error {
				for _, e := range b.Entries {
					seqs = append(seqs, e.Seq)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(c.Seqs) {
				t.Fatalf("sequences %v, want %v", seqs, c.Seqs)
			}
		})
	}
}
