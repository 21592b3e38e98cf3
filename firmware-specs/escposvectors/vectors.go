package escposvectors

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

//go:embed commands.json
var commandsJSON []byte

//go:embed status.json
var statusJSON []byte

// Command is one command's encoding. Args names the arguments the encoder
// is called with (see escpos.md §2 for each command); Text, for a text
// vector, is the UTF-8 input; Render is how the simulator renders the bytes
// after ESC @ (empty when nothing is printed).
type Command struct {
	Name   string            `json:"name"`
	Args   map[string]string `json:"args,omitempty"`
	Hex    string            `json:"hex"`
	Render string            `json:"render,omitempty"`
}

// StatusByte is a reply to DLE EOT N. Valid is false for bytes whose fixed
// bits are wrong; Set lists the Status fields the byte sets (escpos.md §5
// names).
type StatusByte struct {
	Name  string   `json:"name"`
	N     byte     `json:"n"`
	Byte  string   `json:"byte"`
	Valid bool     `json:"valid"`
	Set   []string `json:"set,omitempty"`
}

// Bytes decodes a hex string with optional spaces.
func Bytes(h string) ([]byte, error) {
	return hex.DecodeString(strings.ReplaceAll(h, " ", ""))
}

// LoadCommands parses commands.json.
func LoadCommands() ([]Command, error) {
	var v struct {
		Commands []Command `json:"commands"`
	}
	if err := json.Unmarshal(commandsJSON, &v); err != nil {
		return nil, fmt.Errorf("escposvectors: %w", err)
	}
	return v.Commands, nil
}

// LoadStatus parses status.json.
func LoadStatus() ([]StatusByte, error) {
	var v struct {
		Status []StatusByte `json:"status"`
	}
	if err := json.Unmarshal(statusJSON, &v); err != nil {
		return nil, fmt.Errorf("escposvectors: %w", err)
	}
	return v.Status, nil
}
