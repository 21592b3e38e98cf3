package wiegandvectors

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

//go:embed vectors.json
var raw []byte

// Good is a frame that decodes to a credential.
type Good struct {
	Name     string `json:"name"`
	Bits     string `json:"bits"` // "0"/"1", first bit on the wire first
	Encoding string `json:"encoding"`
	Facility uint32 `json:"facility"`
	Card     uint32 `json:"card"`
	Number   string `json:"number"`
}

// Bad is a frame a decoder must reject with Reason.
type Bad struct {
	Name   string `json:"name"`
	Bits   string `json:"bits"`
	Reason string `json:"reason"`
}

// Raw is a frame of no known format, with its number when its length is
// configured as a raw length.
type Raw struct {
	Name   string `json:"name"`
	Bits   string `json:"bits"`
	Number string `json:"number"`
}

// Vectors is the whole file.
type Vectors struct {
	Good []Good `json:"good"`
	Bad  []Bad  `json:"bad"`
	Raw  []Raw  `json:"raw"`
}

// Load parses the embedded vectors.
func Load() (Vectors, error) {
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		return Vectors{}, fmt.Errorf("wiegandvectors: %w", err)
	}
	return v, nil
}

// Bits parses a vector's bit string; it panics on characters other than
// '0' and '1', which a vector never has.
func Bits(s string) []bool {
	b := make([]bool, len(s))
	for i, c := range s {
		switch c {
		case '0':
		case '1':
			b[i] = true
		default:
			panic("wiegandvectors: bad bit string " + s)
		}
	}
	return b
}
