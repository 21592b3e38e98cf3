package export

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

var t0 = time.Date(2026, 11, 28, 9, 30, 0, 0, time.FixedZone("", 8*3600))

// testCA is a CA with its key, to issue box certificates of any CN and
// key type.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, pool: pool}
}

// issue makes a client certificate for cn with a new key of the given
// type ("ecdsa", "ed25519", "rsa").
func (ca *testCA) issue(t testing.TB, cn, keyType string) Identity {
	t.Helper()
	var key crypto.Signer
	var err error
	switch keyType {
	case "ecdsa":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{Signer: key, Chain: [][]byte{der}, Leaf: leaf}
}

func newCodec(t testing.TB) *wire.Codec {
	t.Helper()
	c, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// entries makes records for the given sequences.
func entries(t testing.TB, seqs ...uint64) []wire.Entry {
	t.Helper()
	var es []wire.Entry
	for _, s := range seqs {
		raw, err := wire.MarshalRecord(wire.Record{Kind: "door.opened", Class: wire.ClassEvent, Time: t0.Add(time.Duration(s) * time.Second),
			Body: fmt.Appendf(nil, `{"door":"d1","n":%d}`, s)})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, wire.Entry{Seq: s, Raw: raw})
	}
	return es
}

func seqRange(a, b uint64) []uint64 {
	var s []uint64
	for i := a; i <= b; i++ {
		s = append(s, i)
	}
	return s
}

func header(agent string, first, last, count uint64) Header {
	return Header{Agent: agent, ExportID: "e1", Created: t0, First: first, Last: last, Count: count, AckedThrough: first - 1}
}

// writeFile writes batches through a Writer and returns the file's bytes.
func writeFile(t testing.TB, codec *wire.Codec, h Header, id Identity, batches ...[]wire.Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h, codec)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := w.WriteBatch(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(id); err != nil {
		t.Fatal(err)
	}
	if w.Bytes() != int64(buf.Len()) {
		t.Fatalf("Bytes %d, wrote %d", w.Bytes(), buf.Len())
	}
	return buf.Bytes()
}

// assemble builds a file from raw sections, bypassing the Writer's
// checks, signed by id and with a correct checksum: what a buggy or
// hostile exporter holding the key could produce.
func assemble(t testing.TB, h Header, sections [][]byte, id Identity) []byte {
	t.Helper()
	h.Format = FormatVersion
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	b := append([]byte(magic), FormatVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(hj)))
	b = append(b, hj...)
	for _, s := range sections {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, 0)
	b = append(b, byte(len(id.Chain)))
	for _, der := range id.Chain {
		b = binary.BigEndian.AppendUint32(b, uint32(len(der)))
		b = append(b, der...)
	}
	d := sha256.Sum256(b)
	sig, err := sign(id.Signer, d[:])
	if err != nil {
		t.Fatal(err)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sig)))
	b = append(b, sig...)
	return resum(b)
}

// resum appends a correct checksum to b.
func resum(b []byte) []byte {
	s := sha256.Sum256(b)
	return append(b, s[:]...)
}

func openBytes(t testing.TB, b []byte, roots *x509.CertPool, codec *wire.Codec) (*File, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x"+Ext)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return Open(p, VerifyOptions{Roots: roots, Codec: codec})
}

func readAll(t testing.TB, f *File) []wire.Entry {
	t.Helper()
	var got []wire.Entry
	err := f.Batches(func(b wire.Batch) error {
		for _, e := range b.Entries {
			got = append(got, wire.Entry{Seq: e.Seq, Raw: bytes.Clone(e.Raw)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRoundTripEveryKeyType(t *testing.T) {
	codec := newCodec(t)
	ca := newTestCA(t, "hub CA")
	for _, kt := range []string{"ecdsa", "ed25519", "rsa"} {
		t.Run(kt, func(t *testing.T) {
			id := ca.issue(t, "gate-17", kt)
			// 11..13 were evicted (a gap record names them): the file
			// covers 11..40 and holds 27 records.
			b1, b2, b3 := entries(t, seqRange(14, 20)...), entries(t, seqRange(21, 30)...), entries(t, seqRange(31, 40)...)
			data := writeFile(t, codec, header("gate-17", 11, 40, 27), id, b1, b2, b3)
			f, err := openBytes(t, data, ca.pool, codec)
			if err != nil {
				t.Fatal(err)
			}
			if f.Header.Agent != "gate-17" || f.Header.First != 11 || f.Header.Last != 40 || f.Header.Count != 27 || f.Leaf.Subject.CommonName != "gate-17" {
				t.Fatalf("header %+v", f.Header)
			}
			if f.Size != int64(len(data)) || !bytes.Equal(f.Digest[:], data[len(data)-32:]) {
				t.Fatalf("size %d digest %x", f.Size, f.Digest)
			}
			want := append(append(b1, b2...), b3...)
			got := readAll(t, f)
			if len(got) != len(want) {
				t.Fatalf("read %d records, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Raw, want[i].Raw) {
					t.Fatalf("record %d: seq %d, want %d", i, got[i].Seq, want[i].Seq)
				}
			}
			var ranges [][2]uint64
			if err := f.Batches(func(b wire.Batch) error { ranges = append(ranges, [2]uint64{b.First, b.Last}); return nil }); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ranges) != "[[11 20] [21 30] [31 40]]" {
				t.Fatalf("batch ranges %v: the first batch must start at the header's First", ranges)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	codec := newCodec(t)
	ca := newTestCA(t, "hub CA")
	other := newTestCA(t, "someone else's CA")
	id := ca.issue(t, "gate-17", "ecdsa")
	good := writeFile(t, codec, header("gate-17", 1, 30, 30), id,
		entries(t, seqRange(1, 10)...), entries(t, seqRange(11, 20)...), entries(t, seqRange(21, 30)...))
	batch := func(first, last uint64, seqs ...uint64) []byte {
		msg, _, err := codec.EncodeBatch("gate-17", "e1", first, last, entries(t, seqs...), nil)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	// The byte offset of the middle of the second batch.
	mid := len(good) / 2
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x40
		return c
	}
	// A header change with the checksum recomputed: only the signature
	// can tell.
	hdrEdit := bytes.Replace(good[:len(good)-32], []byte(`"acked_through":0`), []byte(`"acked_through":9`), 1)
	if bytes.Equal(hdrEdit, good[:len(good)-32]) {
		t.Fatal("test setup: header field not found")
	}
	cases := []struct {
		name  string
		data  []byte
		roots *x509.CertPool
		want  error
	}{
		{"flipped byte in a record", flip(good, mid), ca.pool, ErrChecksum},
		{"flipped byte in the signature", flip(good, len(good)-40), ca.pool, ErrChecksum},
		{"header changed, checksum redone", resum(hdrEdit), ca.pool, ErrSignature},
		{"record changed, checksum redone", resum(flip(good, mid)[:len(good)-32]), ca.pool, nil}, // any refusal
		{"truncated in a batch", good[:mid], ca.pool, ErrTruncated},
		{"truncated in the checksum", good[:len(good)-5], ca.pool, ErrTruncated},
		{"truncated to nothing", nil, ca.pool, ErrTruncated},
		{"trailing bytes", append(bytes.Clone(good), 0), ca.pool, ErrChecksum},
		{"not from the CA", good, other.pool, ErrUntrusted},
		{"certificate from another CA", writeFile(t, codec, header("gate-17", 1, 3, 3), other.issue(t, "gate-17", "ecdsa"), entries(t, 1, 2, 3)), ca.pool, ErrUntrusted},
		{"CN is another agent", writeFile(t, codec, header("gate-17", 1, 3, 3), ca.issue(t, "gate-18", "ed25519"), entries(t, 1, 2, 3)), ca.pool, ErrAgent},
		{"not an export", resum([]byte("PK\x03\x04 a zip file, say ........................")), ca.pool, ErrFormat},
		{"batches overlap", assemble(t, header("gate-17", 1, 12, 12), [][]byte{batch(1, 10, seqRange(1, 10)...), batch(5, 12, 11, 12)}, id), ca.pool, ErrSequence},
		{"batches out of order", assemble(t, header("gate-17", 1, 20, 20), [][]byte{batch(11, 20, seqRange(11, 20)...), batch(1, 10, seqRange(1, 10)...)}, id), ca.pool, ErrSequence},
		{"batch beyond the range", assemble(t, header("gate-17", 1, 10, 10), [][]byte{batch(1, 12, seqRange(1, 12)...)}, id), ca.pool, ErrSequence},
		{"count differs", assemble(t, header("gate-17", 1, 10, 9), [][]byte{batch(1, 10, seqRange(1, 10)...)}, id), ca.pool, ErrSequence},
		{"range stops short", assemble(t, header("gate-17", 1, 12, 10), [][]byte{batch(1, 10, seqRange(1, 10)...)}, id), ca.pool, ErrSequence},
		{"batch claims past its last record", assemble(t, header("gate-17", 1, 12, 10), [][]byte{batch(1, 12, seqRange(1, 10)...)}, id), ca.pool, ErrSequence},
		{"batch of another agent", assemble(t, header("gate-17", 1, 3, 3), [][]byte{func() []byte {
			m, _, err := codec.EncodeBatch("gate-18", "e1", 1, 3, entries(t, 1, 2, 3), nil)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}()}, id), ca.pool, ErrSequence},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := openBytes(t, tc.data, tc.roots, codec)
			if err == nil {
				t.Fatalf("accepted (%d records)", f.Header.Count)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
	if _, err := openBytes(t, good, ca.pool, codec); err != nil {
		t.Fatalf("the untampered file: %v", err)
	}
}

func TestExpiredCertificateAtExportTime(t *testing.T) {
	codec := newCodec(t)
	ca := newTestCA(t, "hub CA")
	id := ca.issue(t, "gate-17", "ecdsa")
	h := header("gate-17", 1, 1, 1)
	h.Created = t0.Add(48 * time.Hour) // after the certificate's NotAfter
	if _, err := openBytes(t, writeFile(t, codec, h, id, entries(t, 1)), ca.pool, codec); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("got %v, want ErrUntrusted", err)
	}
}

func TestWriterKeepsItsPromise(t *testing.T) {
	codec := newCodec(t)
	ca := newTestCA(t, "hub CA")
	id := ca.issue(t, "gate-17", "ecdsa")
	other := ca.issue(t, "gate-17", "ecdsa")
	newW := func() *Writer {
		w, err := NewWriter(&bytes.Buffer{}, header("gate-17", 5, 10, 6), codec)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, h := range []Header{header("", 1, 2, 2), header("gate-17", 0, 2, 2), header("gate-17", 3, 2, 1), header("gate-17", 1, 2, 3), {Agent: "gate-17", First: 1, Last: 1, Count: 1}} {
		if _, err := NewWriter(&bytes.Buffer{}, h, codec); !errors.Is(err, ErrWriter) {
			t.Errorf("header %+v: %v", h, err)
		}
	}
	if err := newW().WriteBatch(entries(t, 4, 5)); !errors.Is(err, ErrWriter) {
		t.Errorf("record before First: %v", err)
	}
	if err := newW().WriteBatch(entries(t, 10, 11)); !errors.Is(err, ErrWriter) {
		t.Errorf("record after Last: %v", err)
	}
	w := newW()
	if err := w.WriteBatch(entries(t, 5, 6, 7)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBatch(entries(t, 6)); !errors.Is(err, ErrWriter) {
		t.Errorf("going back: %v", err)
	}
	if err := w.Finish(id); !errors.Is(err, ErrWriter) {
		t.Errorf("Finish short of the count: %v", err)
	}
	if err := w.WriteBatch(entries(t, 8, 9, 10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(Identity{Signer: other.Signer, Chain: id.Chain}); !errors.Is(err, ErrWriter) {
		t.Errorf("key of another certificate: %v", err)
	}
	if err := w.Finish(id); err != nil {
		t.Errorf("Finish: %v", err)
	}
}

func TestBatchesNoticesAChangedFile(t *testing.T) {
	codec := newCodec(t)
	ca := newTestCA(t, "hub CA")
	id := ca.issue(t, "gate-17", "ecdsa")
	data := writeFile(t, codec, header("gate-17", 1, 20, 20), id, entries(t, seqRange(1, 10)...), entries(t, seqRange(11, 20)...))
	p := filepath.Join(t.TempDir(), "x"+Ext)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p, VerifyOptions{Roots: ca.pool, Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	// Swap the stick's file for another between verifying and reading.
	changed := bytes.Clone(data)
	s := f.sections[1]
	changed[s.off+int64(s.n)/2] ^= 1
	if err := os.WriteFile(p, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	err = f.Batches(func(b wire.Batch) error { seen = append(seen, b.First); return nil })
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("got %v, want ErrChanged", err)
	}
	if fmt.Sprint(seen) != "[1]" {
		t.Fatalf("batches passed on: %v, want only the first, verified one", seen)
	}
}

func TestLoadIdentity(t *testing.T) {
	ca := newTestCA(t, "hub CA")
	dir := t.TempDir()
	for _, kt := range []string{"ecdsa", "ed25519"} {
		id := ca.issue(t, "gate-17", kt)
		keyDER, err := x509.MarshalPKCS8PrivateKey(id.Signer)
		if err != nil {
			t.Fatal(err)
		}
		cf, kf := filepath.Join(dir, kt+".pem"), filepath.Join(dir, kt+"-key.pem")
		writePEM(t, cf, "CERTIFICATE", id.Chain[0])
		writePEM(t, kf, "PRIVATE KEY", keyDER)
		got, err := LoadIdentity(cf, kf)
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		if got.Leaf.Subject.CommonName != "gate-17" || !publicKeysEqual(got.Leaf.PublicKey, got.Signer.Public()) {
			t.Fatalf("%s: identity %v", kt, got.Leaf.Subject)
		}
	}
	if _, err := LoadIdentity(filepath.Join(dir, "ecdsa.pem"), filepath.Join(dir, "ed25519-key.pem")); err == nil {
		t.Fatal("a key of another certificate was accepted")
	}
	if _, err := LoadIdentity(filepath.Join(dir, "missing.pem"), filepath.Join(dir, "ed25519-key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing certificate: %v", err)
	}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
