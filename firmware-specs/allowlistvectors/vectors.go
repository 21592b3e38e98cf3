package allowlistvectors

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/kioskedge/kioskedge/firmware-specs/hexjson"
)

//go:embed vectors.json
var raw []byte

// JSON returns the embedded vectors file as is.
func JSON() []byte { return append([]byte(nil), raw...) }

// Hex is a byte string written as lowercase hex in the JSON.
type Hex = hexjson.Hex

// Entry is an entry's fields and its value encoding (§2).
type Entry struct {
	Name         string   `json:"name"`
	Key          Hex      `json:"key"`
	ValidFrom    int64    `json:"valid_from"` // Unix seconds, 0 unbounded
	ValidTo      int64    `json:"valid_to"`
	DoorGroups   []uint32 `json:"door_groups"`
	Schedule     uint32   `json:"schedule"`
	Staff        bool     `json:"staff"`
	AntiPassback uint32   `json:"anti_passback"`
	Value        Hex      `json:"value"`
}

// Window is a weekly window; Days are time.Weekday numbers (0 Sunday).
type Window struct {
	Days []int  `json:"days"`
	From string `json:"from"` // "HH:MM"
	To   string `json:"to"`
}

// Schedule is a schedule's fields and its encoding (§3).
type Schedule struct {
	Name     string   `json:"name"`
	ID       uint32   `json:"id"`
	Windows  []Window `json:"windows"`
	Holidays []string `json:"holidays"` // "YYYY-MM-DD"
	Hex      Hex      `json:"hex"`
}

// Snapshot is a whole snapshot (§4, §5): its chunks in order, the SHA-256
// of their concatenation, and what it holds (the names of Entries and the
// ids of Schedules).
type Snapshot struct {
	Version   uint64   `json:"version"`
	Chunks    []Hex    `json:"chunks"`
	SHA256    Hex      `json:"sha256"`
	Entries   []string `json:"entries"`
	Schedules []uint32 `json:"schedules"`
}

// Malformed is a byte string a decoder must reject.
type Malformed struct {
	Name string `json:"name"`
	Hex  Hex    `json:"hex"`
}

// Vectors is the whole file.
type Vectors struct {
	Entries          []Entry     `json:"entries"`
	Schedules        []Schedule  `json:"schedules"`
	Snapshot         Snapshot    `json:"snapshot"`
	MalformedEntries []Malformed `json:"malformed_entries"`
	MalformedChunks  []Malformed `json:"malformed_chunks"`
}

// Load decodes the embedded vectors. It fails only if the file is broken.
func Load() (Vectors, error) {
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		return Vectors{}, fmt.Errorf("allowlistvectors: %w", err)
	}
	return v, nil
}
