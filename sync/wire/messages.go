package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Agent states carried by Status (hub-protocol.md §3).
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// Status is the retained birth (state "online", published on every connect)
// and death (state "offline", set as the MQTT Will and published by a clean
// shutdown). BdSeq pairs a death with its birth: a status whose BdSeq is
// lower than the one the hub already holds for the agent is stale and
// ignored, so a late Will never overwrites a newer birth.
type Status struct {
	State      string    `json:"state"`
	Agent      string    `json:"agent"`
	BootID     string    `json:"boot_id"`
	BdSeq      uint64    `json:"bdseq"`
	Time       time.Time `json:"time"`
	Version    string    `json:"version,omitempty"`
	ConfigHash string    `json:"config_hash,omitempty"`
	Inventory  []Device  `json:"inventory,omitempty"`
	// Site and Region, in a birth, are the box's [agent] site and
	// administrative region code (hub-protocol.md §3), for the hub's
	// fleet and roll-out coverage views.
	Site   string `json:"site,omitempty"`
	Region string `json:"region,omitempty"`
	Reason string `json:"reason,omitempty"` // for offline: "shutdown" or "will"
	// AckedThrough, in a birth, is the highest sequence the agent knows a
	// hub has stored (its outbox's AckedThrough); 0 or absent: none. A hub
	// whose store does not cover [1, AckedThrough] (a lost or replaced
	// database) marks that range as stored by an earlier hub, so it can
	// ack again (hub-protocol.md §3, §5.3).
	AckedThrough uint64 `json:"acked_through,omitempty"`
}

// Device is one entry of the birth's device inventory.
type Device struct {
	Name string `json:"name"`
	Kind string `json:"kind"`           // "wiegand", "osdp", "idcard", …
	Port string `json:"port,omitempty"` // serial path or GPIO lines
}

// Health is the retained periodic health snapshot (hub-protocol.md §6).
type Health struct {
	Agent   string         `json:"agent"`
	BootID  string         `json:"boot_id"`
	Time    time.Time      `json:"time"`
	Version string         `json:"version,omitempty"`
	UptimeS float64        `json:"uptime_s"`
	Outbox  OutboxHealth   `json:"outbox"`
	Uplink  UplinkHealth   `json:"uplink"`
	Devices []DeviceHealth `json:"devices,omitempty"`
	// Allowlist and Doors are present on a gate (hub-protocol.md §6).
	Allowlist *AllowlistHealth  `json:"allowlist,omitempty"`
	Doors     []DoorHealth      `json:"doors,omitempty"`
	Counters  map[string]uint64 `json:"counters,omitempty"` // bad-input and error counters
	// Clock is the agent's latest offset from the hub's clock, measured
	// over time/req (hub-protocol.md §6); absent until one was measured.
	Clock *ClockHealth `json:"clock,omitempty"`
}

// ClockHealth is the agent's latest clock check against the hub.
type ClockHealth struct {
	// OffsetMS is how far the hub's clock is ahead of the agent's
	// (negative: the agent is ahead), NTP-style; its error is at most
	// DelayMS/2.
	OffsetMS float64   `json:"offset_ms"`
	DelayMS  float64   `json:"delay_ms"` // the exchange's network round trip
	Measured time.Time `json:"measured"` // agent clock when the reply arrived
	// Skewed says |offset| is beyond the agent's bound ([hub]
	// clock_max_skew); the agent also records a clock.skew alarm.
	Skewed bool `json:"skewed,omitempty"`
}

// OutboxHealth describes the agent's backlog.
type OutboxHealth struct {
	Depth         uint64  `json:"depth"`           // records not yet acked by the hub
	OldestUnsentS float64 `json:"oldest_unsent_s"` // age of the oldest unacked record
	DiskBytes     int64   `json:"disk_bytes"`      // size of the outbox file
	BudgetBytes   int64   `json:"budget_bytes"`    // 0 = unlimited
	NextSeq       uint64  `json:"next_seq"`        // the next sequence number to be given
	AckedThrough  uint64  `json:"acked_through"`   // the hub has stored everything up to here
	Evicted       uint64  `json:"evicted"`         // records dropped under the budget, ever
}

// UplinkHealth describes the MQTT link.
type UplinkHealth struct {
	Connected  bool   `json:"connected"`
	Reconnects uint64 `json:"reconnects"`
	Batches    uint64 `json:"batches_sent"`
	InFlight   int    `json:"in_flight"`
}

// DeviceHealth is reserved for the device drivers.
type DeviceHealth struct {
	Name      string    `json:"name"`
	Connected bool      `json:"connected"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Errors    uint64    `json:"errors"`
	Detail    string    `json:"detail,omitempty"`
}

// Ack is the hub's end-to-end acknowledgement: every sequence up to and
// including Through is stored durably at the hub (hub-protocol.md §5.3).
type Ack struct {
	Agent   string `json:"agent"`
	Through uint64 `json:"through"`
}

// MaxControlMessage bounds JSON control messages (status, health, ack).
const MaxControlMessage = 64 << 10

// ErrBadMessage wraps every JSON control-message decoding failure.
var ErrBadMessage = errors.New("wire: malformed control message")

// DecodeAck parses an ack, rejecting oversized or malformed input and a
// zero Through.
func DecodeAck(b []byte) (Ack, error) {
	var a Ack
	if err := decodeJSON(b, &a); err != nil {
		return a, err
	}
	if a.Through == 0 {
		return a, fmt.Errorf("%w: ack through 0", ErrBadMessage)
	}
	return a, nil
}

// DecodeStatus parses a status message and checks its state.
func DecodeStatus(b []byte) (Status, error) {
	var s Status
	if err := decodeJSON(b, &s); err != nil {
		return s, err
	}
	if s.State != StateOnline && s.State != StateOffline {
		return s, fmt.Errorf("%w: state %q", ErrBadMessage, s.State)
	}
	return s, nil
}

// DecodeHealth parses a health snapshot.
func DecodeHealth(b []byte) (Health, error) {
	var h Health
	err := decodeJSON(b, &h)
	return h, err
}

func decodeJSON(b []byte, v any) error {
	if len(b) > MaxControlMessage {
		return fmt.Errorf("%w: %d bytes over %d", ErrBadMessage, len(b), MaxControlMessage)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	return nil
}

// AllowlistHealth is a gate's allowlist in the health snapshot.
type AllowlistHealth struct {
	Version uint64 `json:"version"` // the version in effect; 0 before the first
	Entries uint64 `json:"entries"`
	// Receiving is "i/N" while a snapshot is arriving, else empty.
	Receiving string `json:"receiving,omitempty"`
}

// DoorHealth is one door of a gate in the health snapshot.
type DoorHealth struct {
	ID       string   `json:"id"`
	Mode     string   `json:"mode"` // normal, locked_down, free_passage
	Released bool     `json:"released"`
	Open     bool     `json:"open"`
	Alarms   []string `json:"alarms,omitempty"` // active: forced_open, held_open, fire, tamper
}
