package qrscanvectors

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

//go:embed framing.json
var framingJSON []byte

// Event kinds named by vectors (qrscan.md §4).
const (
	KindLine      = "line"
	KindEmpty     = "empty"
	KindGarbage   = "garbage"
	KindOverlong  = "overlong"
	KindTruncated = "truncated"
)

// Chunk is bytes that arrive together at AtMS milliseconds after the start.
// Data is the bytes as a JSON string; Hex, when set, replaces it (for
// bytes that are not UTF-8).
type Chunk struct {
	AtMS int64  `json:"at_ms"`
	Data string `json:"data,omitempty"`
	Hex  string `json:"hex,omitempty"`
}

// Bytes returns the chunk's bytes.
func (c Chunk) Bytes() ([]byte, error) {
	if c.Hex != "" {
		return hex.DecodeString(c.Hex)
	}
	return []byte(c.Data), nil
}

// Event is one expected framer result. Payload and Symbology are for
// lines; Len for dropped lines.
type Event struct {
	Kind      string `json:"kind"`
	Payload   string `json:"payload,omitempty"`
	Symbology string `json:"symbology,omitempty"`
	Len       int    `json:"len,omitempty"`
}

// Case is one framing vector: a configuration, the chunks fed in order,
// an optional final expiry check at ExpireAtMS (when non-zero), and every
// event expected, in order.
type Case struct {
	Name          string   `json:"name"`
	Terminator    string   `json:"terminator"` // "" means CR
	StripAIM      bool     `json:"strip_aim,omitempty"`
	Prefixes      []string `json:"prefixes,omitempty"`
	Suffixes      []string `json:"suffixes,omitempty"`
	MaxLen        int      `json:"max_len,omitempty"`
	CharTimeoutMS int64    `json:"char_timeout_ms,omitempty"`
	Chunks        []Chunk  `json:"chunks"`
	ExpireAtMS    int64    `json:"expire_at_ms,omitempty"`
	Events        []Event  `json:"events"`
}

// Load parses the framing vectors.
func Load() ([]Case, error) {
	var v struct {
		Cases []Case `json:"cases"`
	}
	if err := json.Unmarshal(framingJSON, &v); err != nil {
		return nil, fmt.Errorf("qrscanvectors: %w", err)
	}
	return v.Cases, nil
}
