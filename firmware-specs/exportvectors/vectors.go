package exportvectors

import (
	"embed"
	"encoding/json"
	"fmt"
)

//go:embed vectors.json ca.pem *.keo
var files embed.FS

// Case is one vector file.
type Case struct {
	Name string `json:"name"`
	File string `json:"file"`
	// Expect is "ok" or the check that refuses the file: "checksum",
	// "truncated", "format", "sequence", "signature", "untrusted" or
	// "agent" (outbox-export.md §6).
	Expect string   `json:"expect"`
	Note   string   `json:"note"`
	Seqs   []uint64 `json:"seqs"` // the records' sequences, for "ok"
}

// Vectors is the content of vectors.json.
type Vectors struct {
	About string `json:"about"`
	CA    string `json:"ca"`    // file name of the only trusted CA
	Agent string `json:"agent"` // the agent of every file
	Cases []Case `json:"cases"`
}

// Load decodes the embedded vectors.
func Load() (Vectors, error) {
	var v Vectors
	b, err := files.ReadFile("vectors.json")
	if err != nil {
		return v, fmt.Errorf("exportvectors: %w", err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("exportvectors: %w", err)
	}
	return v, nil
}

// File returns the bytes of one of the vector files (a Case's File, or
// the CA).
func File(name string) ([]byte, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("exportvectors: %w", err)
	}
	return b, nil
}
