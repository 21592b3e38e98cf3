package export

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Format constants (outbox-export.md §2).
const (
	// Ext is the file name extension of an export file.
	Ext = ".keo"
	// FormatVersion is the version byte after the magic.
	FormatVersion = 1

	magic        = "KEOX"
	maxHeader    = 64 << 10
	maxSection   = 4 << 20 // a batch envelope; the hub's wire.Limits default
	maxCerts     = 8
	maxCert      = 16 << 10
	maxSignature = 1024
	checksumLen  = sha256.Size
)

// Errors. Every failure of Open and Batches wraps one of them.
var (
	// ErrFormat: not an export file, an unknown version, or a malformed
	// part (header, section, certificate).
	ErrFormat = errors.New("export: malformed file")
	// ErrTruncated: the file ends before its checksum; the copy is
	// incomplete.
	ErrTruncated = errors.New("export: file truncated")
	// ErrChecksum: the file's SHA-256 does not match; it was damaged.
	ErrChecksum = errors.New("export: checksum mismatch")
	// ErrSequence: the batches break the header's promise (range, order,
	// contiguity, count) or a record does not decode.
	ErrSequence = errors.New("export: sequence check failed")
	// ErrSignature: the signature does not verify with the file's
	// certificate.
	ErrSignature = errors.New("export: bad signature")
	// ErrUntrusted: the certificate does not chain to the trusted CA
	// (or was not valid when the file was made, or is no client
	// certificate).
	ErrUntrusted = errors.New("export: certificate not trusted")
	// ErrAgent: the certificate's common name is not the header's agent.
	ErrAgent = errors.New("export: certificate is not the agent's")
	// ErrChanged: the file changed between verification and reading.
	ErrChanged = errors.New("export: file changed after verification")
	// ErrWriter: misuse of a Writer (range or count not kept, bad header,
	// a key that does not match the certificate).
	ErrWriter = errors.New("export: writer")
)

// Header is the file's header (outbox-export.md §3).
type Header struct {
	Format       int       `json:"format"`        // FormatVersion
	Agent        string    `json:"agent"`         // the box's agent id; its certificate's CN
	ExportID     string    `json:"export_id"`     // random; the batches' boot id
	Created      time.Time `json:"created"`       // when the export was made (the box's clock)
	First        uint64    `json:"first"`         // the range covered, inclusive
	Last         uint64    `json:"last"`          //
	Count        uint64    `json:"count"`         // records in the file
	AckedThrough uint64    `json:"acked_through"` // the outbox's acked marker at export
}

func (h *Header) validate() error {
	switch {
	case h.Format != FormatVersion:
		return fmt.Errorf("format %d, want %d", h.Format, FormatVersion)
	case wire.ValidateID("agent", h.Agent) != nil:
		return fmt.Errorf("agent id %q invalid", h.Agent)
	case h.ExportID == "" || len(h.ExportID) > 64:
		return errors.New("export id missing or longer than 64 bytes")
	case h.First == 0 || h.Last < h.First:
		return fmt.Errorf("range %d..%d", h.First, h.Last)
	case h.Count == 0 || h.Count > h.Last-h.First+1:
		return fmt.Errorf("count %d for range %d..%d", h.Count, h.First, h.Last)
	}
	return nil
}

// NewExportID returns a random export id (16 bytes, hex).
func NewExportID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return fmt.Sprintf("%x", b)
}

// Identity is the box's signing identity: its TLS client key and
// certificate chain (leaf first).
type Identity struct {
	Signer crypto.Signer
	Chain  [][]byte // DER, leaf first
	Leaf   *x509.Certificate
}

// LoadIdentity reads the box's certificate (PEM, leaf first, optional
// intermediates) and private key (PEM: PKCS#8, SEC 1 EC or PKCS#1 RSA;
// ECDSA, Ed25519 or RSA) — the [hub] cert_file and key_file. It fails if
// either cannot be read or parsed or the key does not match the
// certificate.
func LoadIdentity(certFile, keyFile string) (Identity, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return Identity{}, fmt.Errorf("export: certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return Identity{}, fmt.Errorf("export: key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return Identity{}, fmt.Errorf("export: certificate %s and key %s: %w", certFile, keyFile, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return Identity{}, fmt.Errorf("export: key %s cannot sign", keyFile)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return Identity{}, fmt.Errorf("export: certificate %s: %w", certFile, err)
	}
	return Identity{Signer: signer, Chain: pair.Certificate, Leaf: leaf}, nil
}

// sign signs a SHA-256 digest: ECDSA (ASN.1) and RSA (PKCS#1 v1.5) sign
// the digest as a SHA-256 hash, Ed25519 signs the 32 digest bytes as its
// message (outbox-export.md §5).
func sign(s crypto.Signer, digest []byte) ([]byte, error) {
	opts := crypto.SignerOpts(crypto.SHA256)
	if _, ok := s.Public().(ed25519.PublicKey); ok {
		opts = crypto.Hash(0)
	}
	return s.Sign(rand.Reader, digest, opts)
}

// Writer streams an export file; see the package doc.
type Writer struct {
	w       io.Writer
	sum     hash.Hash // of every byte written
	h       Header
	codec   *wire.Codec
	next    uint64 // the next batch's First
	count   uint64
	n       int64
	err     error
	scratch []byte
}

// NewWriter validates h (Format 0 means FormatVersion) and writes the
// magic and the header to w. The codec encodes the batches.
func NewWriter(w io.Writer, h Header, codec *wire.Codec) (*Writer, error) {
	if h.Format == 0 {
		h.Format = FormatVersion
	}
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrWriter, err)
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrWriter, err)
	}
	ew := &Writer{w: w, sum: sha256.New(), h: h, codec: codec, next: h.First}
	buf := append([]byte(magic), FormatVersion)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(hj)))
	buf = append(buf, hj...)
	ew.write(buf)
	return ew, ew.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.n += int64(n)
	if err != nil {
		w.err = err
		return
	}
	w.sum.Write(b) // a hash.Hash never returns an error
}

// Bytes returns the bytes written so far.
func (w *Writer) Bytes() int64 { return w.n }

// WriteBatch writes one batch of records, which must follow the previous
// ones in strictly increasing sequence order inside the header's range.
// The batch covers from the previous batch's last sequence + 1 (the
// header's First for the first batch) through its last record.
func (w *Writer) WriteBatch(ents []wire.Entry) error {
	if w.err != nil {
		return w.err
	}
	if len(ents) == 0 {
		return fmt.Errorf("%w: empty batch", ErrWriter)
	}
	last := ents[len(ents)-1].Seq
	if ents[0].Seq < w.next || last > w.h.Last {
		return fmt.Errorf("%w: records %d..%d outside %d..%d", ErrWriter, ents[0].Seq, last, w.next, w.h.Last)
	}
	msg, scratch, err := w.codec.EncodeBatch(w.h.Agent, w.h.ExportID, w.next, last, ents, w.scratch)
	w.scratch = scratch
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWriter, err)
	}
	if len(msg) > maxSection {
		return fmt.Errorf("%w: batch of %d bytes over %d; write smaller batches", ErrWriter, len(msg), maxSection)
	}
	w.write(binary.BigEndian.AppendUint32(nil, uint32(len(msg))))
	w.write(msg)
	w.next = last + 1
	w.count += uint64(len(ents))
	return w.err
}

// Finish checks that the batches kept the header's promise (range and
// count), then writes the end marker, id's certificate chain,
// the signature and the checksum. It does not close the underlying
// writer. Errors: ErrWriter for a broken promise or a key that does not
// match the leaf certificate; the signer's or the writer's error.
func (w *Writer) Finish(id Identity) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case w.next-1 != w.h.Last || w.count != w.h.Count:
		return fmt.Errorf("%w: wrote %d records through %d; the header promised %d through %d",
			ErrWriter, w.count, w.next-1, w.h.Count, w.h.Last)
	case len(id.Chain) == 0 || len(id.Chain) > maxCerts || id.Signer == nil:
		return fmt.Errorf("%w: need a signer and 1..%d certificates", ErrWriter, maxCerts)
	}
	leaf, err := x509.ParseCertificate(id.Chain[0])
	if err != nil {
		return fmt.Errorf("%w: leaf certificate: %v", ErrWriter, err)
	}
	if !publicKeysEqual(leaf.PublicKey, id.Signer.Public()) {
		return fmt.Errorf("%w: the key does not match the certificate", ErrWriter)
	}
	buf := binary.BigEndian.AppendUint32(nil, 0)
	buf = append(buf, byte(len(id.Chain)))
	for _, der := range id.Chain {
		if len(der) > maxCert {
			return fmt.Errorf("%w: certificate of %d bytes over %d", ErrWriter, len(der), maxCert)
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(der)))
		buf = append(buf, der...)
	}
	w.write(buf)
	if w.err != nil {
		return w.err
	}
	sig, err := sign(id.Signer, w.sum.Sum(nil))
	if err != nil {
		return fmt.Errorf("export: sign: %w", err)
	}
	if len(sig) > maxSignature {
		return fmt.Errorf("%w: signature of %d bytes", ErrWriter, len(sig))
	}
	w.write(append(binary.BigEndian.AppendUint16(nil, uint16(len(sig))), sig...))
	w.write(w.sum.Sum(nil))
	return w.err
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
