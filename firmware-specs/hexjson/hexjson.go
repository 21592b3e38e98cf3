// Package hexjson is the byte-string type the firmware-specs vector files
// share: bytes written in the JSON as a lowercase hex string.
package hexjson

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Hex is a byte string written as lowercase hex in the JSON.
type Hex []byte

// UnmarshalJSON decodes a hex string; it fails on odd length or non-hex
// characters.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hexjson: %w", err)
	}
	*h = d
	return nil
}
