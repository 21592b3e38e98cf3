package hubvectors

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Error classes named by malformed vectors.
const (
	ErrShort     = "short"     // a record shorter than its fixed header
	ErrVersion   = "version"   // an unknown record or envelope version
	ErrMalformed = "malformed" // anything else that does not follow the layout
	ErrEmpty     = "empty"     // a batch declaring zero records
	ErrTooBig    = "too_big"   // a batch over one of the decoding limits
)

//go:embed records.json
var recordsJSON []byte

//go:embed batches.json
var batchesJSON []byte

// Record is a valid stored record and the fields it decodes to.
type Record struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Class       uint8  `json:"class"`
	UnixMS      int64  `json:"unix_ms"`
	ZoneOffsetS int    `json:"zone_offset_s"`
	Body        string `json:"body"` // the body bytes as text
	Hex         string `json:"hex"`  // the stored form
}

// Invalid is an input a decoder must reject with the error class Error.
type Invalid struct {
	Name  string `json:"name"`
	Hex   string `json:"hex"`
	Error string `json:"error"`
}

// Records is the content of records.json.
type Records struct {
	About   string    `json:"about"`
	Valid   []Record  `json:"valid"`
	Invalid []Invalid `json:"invalid"`
}

// Entry is one record carried in a batch, with its sequence number.
type Entry struct {
	Seq uint64 `json:"seq"`
	Hex string `json:"hex"`
}

// Batch is a valid envelope and what it decodes to.
type Batch struct {
	Name        string  `json:"name"`
	Hex         string  `json:"hex"`
	Agent       string  `json:"agent"`
	BootID      string  `json:"boot_id"`
	First       uint64  `json:"first"`
	Last        uint64  `json:"last"`
	Compression uint8   `json:"compression"`
	Entries     []Entry `json:"entries"`
}

// Batches is the content of batches.json.
type Batches struct {
	About   string    `json:"about"`
	Valid   []Batch   `json:"valid"`
	Invalid []Invalid `json:"invalid"`
}

// LoadRecords parses the embedded record vectors. It fails only if the
// embedded file is broken, which this package's own test rules out.
func LoadRecords() (Records, error) {
	var r Records
	if err := json.Unmarshal(recordsJSON, &r); err != nil {
		return r, fmt.Errorf("hubvectors: records.json: %w", err)
	}
	return r, nil
}

// LoadBatches parses the embedded batch vectors.
func LoadBatches() (Batches, error) {
	var b Batches
	if err := json.Unmarshal(batchesJSON, &b); err != nil {
		return b, fmt.Errorf("hubvectors: batches.json: %w", err)
	}
	return b, nil
}

// Bytes decodes a vector's hex, ignoring spaces between fields.
func Bytes(h string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
	if err != nil {
		return nil, fmt.Errorf("hubvectors: bad hex %q: %w", h, err)
	}
	return b, nil
}
