package commandvectors

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kioskedge/kioskedge/firmware-specs/hexjson"
)

//go:embed vectors.json
var vectorsJSON []byte

// Exec is what an accepted command makes the agent do.
type Exec struct {
	Name string `json:"name"` // "door.open" or "door.mode"
	Door string `json:"door"`
	Mode string `json:"mode,omitempty"`
}

// Case is one payload of the corpus.
type Case struct {
	Name       string      `json:"name"`
	Payload    string      `json:"payload"`     // the payload as text, or
	PayloadHex hexjson.Hex `json:"payload_hex"` // the payload as bytes
	// Canonical is the signing form of the payload's fields (only for
	// payloads that parse); for a tampered payload it differs from what
	// was signed.
	Canonical hexjson.Hex `json:"canonical"`
	Code      string      `json:"code"`     // the result code the agent must give
	Executes  *Exec       `json:"executes"` // set for code "ok"
}

// Bytes returns the payload bytes.
func (c Case) Bytes() []byte {
	if c.PayloadHex != nil {
		return c.PayloadHex
	}
	return []byte(c.Payload)
}

// Vectors is the content of vectors.json.
type Vectors struct {
	About          string      `json:"about"`
	Seed           hexjson.Hex `json:"seed"`       // the hub's Ed25519 seed (test key)
	PublicKey      hexjson.Hex `json:"public_key"` // its public key
	OtherSeed      hexjson.Hex `json:"other_seed"` // a key that is not the hub's
	OtherPublicKey hexjson.Hex `json:"other_public_key"`
	Agent          string      `json:"agent"` // the id of the agent under test
	Now            time.Time   `json:"now"`   // the agent's clock for the whole sequence
	MaxHorizonS    int         `json:"max_horizon_s"`
	SkewS          int         `json:"skew_s"`
	Sequence       []Case      `json:"sequence"` // to be fed in order to one fresh agent
}

// Load decodes the embedded vectors.
func Load() (Vectors, error) {
	var v Vectors
	if err := json.Unmarshal(vectorsJSON, &v); err != nil {
		return v, fmt.Errorf("commandvectors: %w", err)
	}
	return v, nil
}

// MaxHorizon and Skew return the agent settings the corpus assumes.
func (v Vectors) MaxHorizon() time.Duration { return time.Duration(v.MaxHorizonS) * time.Second }

// Skew is the allowed clock skew the corpus assumes.
func (v Vectors) Skew() time.Duration { return time.Duration(v.SkewS) * time.Second }
