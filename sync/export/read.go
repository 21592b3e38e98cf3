package export

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// VerifyOptions configure Open.
type VerifyOptions struct {
	// Roots are the CAs a box certificate must chain to (the hub CA that
	// issues box certificates). Required.
	Roots *x509.CertPool
	// Codec decodes the batches; its Limits bound what is accepted.
	// Required.
	Codec *wire.Codec
}

// File is an export file that passed every check of Open.
type File struct {
	Header Header
	Leaf   *x509.Certificate // the box certificate that signed it
	Size   int64             // bytes
	// Digest is the file's checksum (SHA-256 of everything before it).
	Digest [checksumLen]byte

	path     string
	codec    *wire.Codec
	sections []section
}

type section struct {
	off int64
	n   uint32
	sum [sha256.Size]byte
}

// Open reads the export file at path and verifies all of it, in the
// order of outbox-export.md §6: checksum, structure and sequences,
// signature, chain to opts.Roots (at the header's Created time, for
// client authentication), and the certificate's CN against the header's
// agent. Nothing is trusted before all of them pass.
//
// Errors wrap ErrTruncated, ErrChecksum, ErrFormat, ErrSequence,
// ErrSignature, ErrUntrusted or ErrAgent, or are I/O errors.
func Open(path string, opts VerifyOptions) (*File, error) {
	if opts.Roots == nil || opts.Codec == nil {
		return nil, errors.New("export: VerifyOptions.Roots and Codec are required")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer f.Close() // read-only: a close error changes nothing read
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	sumErr := checkChecksum(f, fi.Size())
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	file, err := parse(f, opts)
	switch {
	case sumErr != nil && errors.Is(err, ErrTruncated):
		return nil, err // the parse says where the copy stops
	case sumErr != nil:
		return nil, sumErr
	case err != nil:
		return nil, err
	}
	file.path, file.Size = path, fi.Size()
	return file, nil
}

// checkChecksum compares the last 32 bytes of the file with the SHA-256
// of the bytes before them.
func checkChecksum(f io.Reader, size int64) error {
	if size < int64(len(magic))+1+checksumLen {
		return fmt.Errorf("%w: %d bytes", ErrTruncated, size)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-checksumLen); err != nil {
		return fmt.Errorf("export: reading: %w", err)
	}
	var want [checksumLen]byte
	if _, err := io.ReadFull(f, want[:]); err != nil {
		return fmt.Errorf("export: reading: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("%w: the file is damaged (or its copy incomplete); copy it again from the box", ErrChecksum)
	}
	return nil
}

// hreader reads, hashes and counts.
type hreader struct {
	r   *bufio.Reader
	h   hash.Hash
	off int64
}

func (r *hreader) next(n int, what string) ([]byte, error) {
	b := make([]byte, n)
	k, err := io.ReadFull(r.r, b)
	r.h.Write(b[:k]) // a hash.Hash never returns an error
	r.off += int64(k)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: ends at byte %d inside %s; copy it again from the box", ErrTruncated, r.off, what)
	}
	if err != nil {
		return nil, fmt.Errorf("export: reading: %w", err)
	}
	return b, nil
}

func (r *hreader) u32(what string) (uint32, error) {
	b, err := r.next(4, what)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// parse reads a whole file from r and checks it (outbox-export.md §6,
// steps 2–6; the checksum at the end is compared too).
func parse(rd io.Reader, opts VerifyOptions) (*File, error) {
	r := &hreader{r: bufio.NewReaderSize(rd, 256<<10), h: sha256.New()}
	m, err := r.next(len(magic)+1, "the magic")
	if err != nil {
		return nil, err
	}
	if string(m[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not an outbox export file (bad magic)", ErrFormat)
	}
	if m[len(magic)] != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d; this hub reads %d", ErrFormat, m[len(magic)], FormatVersion)
	}
	hl, err := r.u32("the header length")
	if err != nil {
		return nil, err
	}
	if hl == 0 || hl > maxHeader {
		return nil, fmt.Errorf("%w: header length %d", ErrFormat, hl)
	}
	hj, err := r.next(int(hl), "the header")
	if err != nil {
		return nil, err
	}
	f := &File{codec: opts.Codec}
	if err := json.Unmarshal(hj, &f.Header); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	h := &f.Header
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	// Sections: contiguous batches covering [First, Last] (§4).
	next, count := h.First, uint64(0)
	for {
		off := r.off
		n, err := r.u32("a section length")
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		if n > maxSection {
			return nil, fmt.Errorf("%w: section at byte %d is %d bytes, over %d", ErrFormat, off, n, maxSection)
		}
		if uint64(len(f.sections)) >= h.Count {
			return nil, fmt.Errorf("%w: more batches than the header's %d records", ErrSequence, h.Count)
		}
		msg, err := r.next(int(n), "a batch")
		if err != nil {
			return nil, err
		}
		b, err := opts.Codec.DecodeBatch(msg)
		if err != nil {
			return nil, fmt.Errorf("%w: batch at byte %d: %v", ErrFormat, off, err)
		}
		if err := checkBatch(h, b, next); err != nil {
			return nil, err
		}
		next, count = b.Last+1, count+uint64(len(b.Entries))
		f.sections = append(f.sections, section{off: off + 4, n: n, sum: sha256.Sum256(msg)})
	}
	if next-1 != h.Last || count != h.Count {
		return nil, fmt.Errorf("%w: the batches hold %d records through %d; the header says %d through %d",
			ErrSequence, count, next-1, h.Count, h.Last)
	}
	// Certificates (§5).
	nc, err := r.next(1, "the certificate count")
	if err != nil {
		return nil, err
	}
	if nc[0] == 0 || nc[0] > maxCerts {
		return nil, fmt.Errorf("%w: %d certificates", ErrFormat, nc[0])
	}
	certs := make([]*x509.Certificate, nc[0])
	for i := range certs {
		n, err := r.u32("a certificate length")
		if err != nil {
			return nil, err
		}
		if n == 0 || n > maxCert {
			return nil, fmt.Errorf("%w: certificate of %d bytes", ErrFormat, n)
		}
		der, err := r.next(int(n), "a certificate")
		if err != nil {
			return nil, err
		}
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrFormat, i, err)
		}
	}
	signed := r.h.Sum(nil)
	sl, err := r.next(2, "the signature length")
	if err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(sl)
	if n == 0 || n > maxSignature {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrFormat, n)
	}
	sig, err := r.next(int(n), "the signature")
	if err != nil {
		return nil, err
	}
	whole := r.h.Sum(nil)
	sum, err := r.next(checksumLen, "the checksum")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(sum, whole) {
		return nil, fmt.Errorf("%w: the file is damaged; copy it again from the box", ErrChecksum)
	}
	copy(f.Digest[:], sum)
	if _, err := r.r.ReadByte(); err == nil {
		return nil, fmt.Errorf("%w: bytes after the checksum", ErrFormat)
	}
	// Trust (§6): signature, chain, identity.
	f.Leaf = certs[0]
	if err := verifySignature(f.Leaf.PublicKey, signed, sig); err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := f.Leaf.Verify(x509.VerifyOptions{
		Roots: opts.Roots, Intermediates: inter, CurrentTime: h.Created,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	if f.Leaf.Subject.CommonName != h.Agent {
		return nil, fmt.Errorf("%w: signed by %q, the header says agent %q", ErrAgent, f.Leaf.Subject.CommonName, h.Agent)
	}
	return f, nil
}

// checkBatch checks one decoded batch against the header and the batches
// before it (next is the sequence it must start at).
func checkBatch(h *Header, b wire.Batch, next uint64) error {
	switch {
	case b.Agent != h.Agent:
		return fmt.Errorf("%w: a batch of agent %q in agent %q's file", ErrSequence, b.Agent, h.Agent)
	case b.First != next:
		return fmt.Errorf("%w: batch %d..%d does not follow on from %d", ErrSequence, b.First, b.Last, next-1)
	case b.Last > h.Last:
		return fmt.Errorf("%w: batch %d..%d beyond the header's last %d", ErrSequence, b.First, b.Last, h.Last)
	case b.Entries[len(b.Entries)-1].Seq != b.Last:
		// The writer ends every batch at its last record; a range beyond
		// it would claim sequences the file does not hold.
		return fmt.Errorf("%w: batch %d..%d ends after its last record %d", ErrSequence, b.First, b.Last, b.Entries[len(b.Entries)-1].Seq)
	}
	for _, e := range b.Entries {
		if _, err := wire.UnmarshalRecord(e.Seq, h.Agent, e.Raw); err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrSequence, e.Seq, err)
		}
	}
	return nil
}

func verifySignature(pub crypto.PublicKey, digest, sig []byte) error {
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digest, sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, digest, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil
	default:
		return fmt.Errorf("%w: unsupported key type %T", ErrSignature, pub)
	}
	if !ok {
		return fmt.Errorf("%w: the file was changed or not signed by its certificate's key", ErrSignature)
	}
	return nil
}

// Path returns the file's path as given to Open.
func (f *File) Path() string { return f.path }

// Batches reads the file's batches again, in order, checks each against
// the digest Open took of it, and calls fn with it; Entries are valid
// only during the call. It stops at fn's first error and returns it.
// Errors: ErrChanged (wrapped) when a batch's bytes differ from what Open
// verified — the batches before it were passed to fn and are sound; I/O
// errors.
func (f *File) Batches(fn func(wire.Batch) error) error {
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer fh.Close() // read-only
	var buf []byte
	for i, s := range f.sections {
		if cap(buf) < int(s.n) {
			buf = make([]byte, s.n)
		}
		buf = buf[:s.n]
		if _, err := fh.ReadAt(buf, s.off); err != nil {
			return fmt.Errorf("%w: batch %d: %v", ErrChanged, i, err)
		}
		if sha256.Sum256(buf) != s.sum {
			return fmt.Errorf("%w: batch %d", ErrChanged, i)
		}
		b, err := f.codec.DecodeBatch(buf)
		if err != nil {
			return fmt.Errorf("%w: batch %d: %v", ErrChanged, i, err)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}
