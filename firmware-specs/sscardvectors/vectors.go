package sscardvectors

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

//go:embed vectors.json
var raw []byte

// Raw returns the embedded vectors.json unchanged.
func Raw() []byte { return append([]byte(nil), raw...) }

// Frame is one reader-transport vector (sscard.md §1.1). For a valid frame
// Err is "" and Payload is what the receiver delivers; otherwise Err is
// "framing", "checksum" or "short" (more bytes needed). N is the number of
// bytes the receiver drops from the front of Hex.
type Frame struct {
	Name    string `json:"name"`
	Hex     string `json:"hex"`
	Payload string `json:"payload"`
	N       int    `json:"n"`
	Err     string `json:"err"`
}

// APDU is a command APDU the driver must build byte for byte (§2.1).
type APDU struct {
	Name string `json:"name"`
	Hex  string `json:"hex"`
}

// Response is a response APDU with its data and status word; Err is the
// class of error it maps to (§2.2): "", "wrong_application", "locked",
// "status" (a *StatusError with no sentinel) or "malformed".
type Response struct {
	Name string `json:"name"`
	Hex  string `json:"hex"`
	Data string `json:"data"`
	SW   int    `json:"sw"`
	Err  string `json:"err"`
}

// TLVItem is one tag and its value (hex).
type TLVItem struct {
	Tag   int    `json:"tag"`
	Value string `json:"value"`
}

// TLV is record data with the items it parses to, or Err "malformed" (§2.5).
type TLV struct {
	Name  string    `json:"name"`
	Hex   string    `json:"hex"`
	Items []TLVItem `json:"items"`
	Err   string    `json:"err"`
}

// Record is one record of an EF: its number and its TLV bytes.
type Record struct {
	Rec int    `json:"rec"`
	Hex string `json:"hex"`
}

// Fields are the decoded fields of the vector card, as text. Dates are
// YYYY-MM-DD.
type Fields struct {
	CardID      string `json:"card_id"`
	Region      string `json:"region"`
	CardType    string `json:"card_type"`
	SpecVersion string `json:"spec_version"`
	Issued      string `json:"issued"`
	ValidUntil  string `json:"valid_until"`
	CardNumber  string `json:"card_number"`
	SSN         string `json:"ssn"`
	Name        string `json:"name"`
	Sex         string `json:"sex"`
	Ethnicity   string `json:"ethnicity"`
	Birth       string `json:"birth"`
}

// Card is the fake card: the SSSE AID, the ATR, the records of EF05 and
// EF06 (§2.5) and what they decode to.
type Card struct {
	AID    string   `json:"aid"`
	ATR    string   `json:"atr"`
	EF05   []Record `json:"ef05"`
	EF06   []Record `json:"ef06"`
	Fields Fields   `json:"fields"`
}

// Vectors is the whole file.
type Vectors struct {
	Comment   string     `json:"comment"`
	Frames    []Frame    `json:"frames"`
	APDUs     []APDU     `json:"apdus"`
	Responses []Response `json:"responses"`
	TLV       []TLV      `json:"tlv"`
	Card      Card       `json:"card"`
}

// Load decodes the embedded vectors. It fails only if vectors.json is not
// valid JSON for Vectors, which the package's own test rules out.
func Load() (Vectors, error) {
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		return Vectors{}, fmt.Errorf("sscardvectors: %w", err)
	}
	return v, nil
}

// MustLoad is Load for tests: it panics on error.
func MustLoad() Vectors {
	v, err := Load()
	if err != nil {
		panic(err)
	}
	return v
}

// Bytes decodes a hex string from the vectors; it panics on bad hex, which
// the package's own test rules out.
func Bytes(h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(fmt.Sprintf("sscardvectors: bad hex %q: %v", h, err))
	}
	return b
}
