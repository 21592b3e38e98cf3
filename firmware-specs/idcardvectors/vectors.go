package idcardvectors

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Error classes named by malformed vectors (firmware-specs/idcard.md §7).
const (
	ErrShort     = "short"     // fewer bytes than the header or the length field needs
	ErrPreamble  = "preamble"  // the frame does not start with AA AA AA 96 69
	ErrLength    = "length"    // the length field is below the minimum, above the maximum, or disagrees with the bytes
	ErrChecksum  = "checksum"  // the XOR checksum does not match
	ErrMalformed = "malformed" // base-info data whose lengths do not add up
	ErrField     = "field"     // base-info data with a field that fails validation
)

//go:embed idcard.json
var vectorsJSON []byte

// Request is a host-to-reader frame.
type Request struct {
	Name string `json:"name"`
	Cmd  byte   `json:"cmd"`
	Para byte   `json:"para"`
	Hex  string `json:"hex"`
}

// Response is a reader-to-host frame and its status and data.
type Response struct {
	Name string `json:"name"`
	SW1  byte   `json:"sw1"`
	SW2  byte   `json:"sw2"`
	SW3  byte   `json:"sw3"`
	Data string `json:"data"` // hex
	Hex  string `json:"hex"`
}

// Fields are the decoded base-info fields of a card. Dates are YYYY-MM-DD;
// ValidUntil is empty when LongTerm is set.
type Fields struct {
	Name          string `json:"name"`
	Sex           string `json:"sex"`
	SexName       string `json:"sex_name"`
	Ethnicity     string `json:"ethnicity"`
	EthnicityName string `json:"ethnicity_name"`
	BirthDate     string `json:"birth_date"`
	Address       string `json:"address"`
	Number        string `json:"number"`
	Issuer        string `json:"issuer"`
	ValidFrom     string `json:"valid_from"`
	ValidUntil    string `json:"valid_until"`
	LongTerm      bool   `json:"long_term"`
	PhotoLen      int    `json:"photo_len"`
	PhotoPrefix   string `json:"photo_prefix"` // hex of the photo's first 16 bytes
}

// Card is a complete read-base-info response frame and what it decodes to.
type Card struct {
	Name   string `json:"name"`
	Hex    string `json:"hex"`
	Fields Fields `json:"fields"`
}

// Invalid is an input a decoder must reject with the error class Error.
type Invalid struct {
	Name  string `json:"name"`
	Hex   string `json:"hex"`
	Error string `json:"error"`
}

// Set is the content of idcard.json.
type Set struct {
	About     string     `json:"about"`
	Requests  []Request  `json:"requests"`
	Responses []Response `json:"responses"`
	Cards     []Card     `json:"cards"`
	// MalformedFrames are whole frames a frame decoder must reject.
	MalformedFrames []Invalid `json:"malformed_frames"`
	// MalformedCards are read-base-info data blocks (after SW1 SW2 SW3) a
	// base-info decoder must reject.
	MalformedCards []Invalid `json:"malformed_cards"`
}

// Load parses the embedded vectors. It fails only if idcard.json is broken.
func Load() (Set, error) {
	var s Set
	if err := json.Unmarshal(vectorsJSON, &s); err != nil {
		return Set{}, fmt.Errorf("idcardvectors: %w", err)
	}
	return s, nil
}

// MustLoad is Load for tests; it panics on a broken file.
func MustLoad() Set {
	s, err := Load()
	if err != nil {
		panic(err)
	}
	return s
}

// Bytes decodes a vector's hex string; it panics on bad hex, which would be
// a broken vector file.
func Bytes(h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(fmt.Sprintf("idcardvectors: bad hex: %v", err))
	}
	return b
}
