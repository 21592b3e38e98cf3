package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Version is the protocol version carried in every topic (hub-protocol.md §2).
const Version = "v1"

// Topic leaves under <root>/v1/<agent>/ (hub-protocol.md §2).
const (
	LeafStatus    = "status"
	LeafEvents    = "events"
	LeafHealth    = "health"
	LeafAck       = "ack"
	LeafCmd       = "cmd"
	LeafCmdResult = "cmd/result"
	LeafAllowlist = "allowlist"
)

// ErrBadTopic is returned by ParseTopic for a topic outside the tree.
var ErrBadTopic = errors.New("wire: topic not in the hub tree")

// Topics names the topics of one agent under one root.
type Topics struct {
	Root  string // e.g. "kioskedge/prov-a"
	Agent string
}

// ValidateID reports whether s can be used as a root segment or an agent id:
// non-empty, at most 128 bytes, and free of MQTT wildcards, '/', '$' at the
// start, NUL and whitespace.
func ValidateID(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("wire: %s is empty", what)
	case len(s) > 128:
		return fmt.Errorf("wire: %s is longer than 128 bytes", what)
	case strings.HasPrefix(s, "$"):
		return fmt.Errorf("wire: %s %q starts with '$'", what, s)
	case strings.ContainsAny(s, "+#/\x00 \t\r\n"):
		return fmt.Errorf("wire: %s %q contains one of + # / NUL or whitespace", what, s)
	}
	return nil
}

func (t Topics) leaf(l string) string { return t.Root + "/" + Version + "/" + t.Agent + "/" + l }

// Status is the retained birth/death topic.
func (t Topics) Status() string { return t.leaf(LeafStatus) }

// Events carries event batches at QoS 1.
func (t Topics) Events() string { return t.leaf(LeafEvents) }

// Health is the retained health snapshot.
func (t Topics) Health() string { return t.leaf(LeafHealth) }

// Ack carries the hub's end-to-end acks to the agent.
func (t Topics) Ack() string { return t.leaf(LeafAck) }

// HubSegment is the agent segment of the hub application's own topics
// (<root>/v1/$hub/status, …/alerts; hub-protocol.md §12): ValidateID
// refuses '$' in agent ids, so no agent can publish there.
const HubSegment = "$hub"

// Cmd carries signed commands to the agent (reserved).
func (t Topics) Cmd() string { return t.leaf(LeafCmd) }

// CmdResult carries command results from the agent (reserved).
func (t Topics) CmdResult() string { return t.leaf(LeafCmdResult) }

// Allowlist carries allowlist snapshots and deltas (reserved).
func (t Topics) Allowlist() string { return t.leaf(LeafAllowlist) }

// Filter returns the subscription filter matching leaf for every agent
// under root, e.g. "<root>/v1/+/events".
func Filter(root, leaf string) string { return root + "/" + Version + "/+/" + leaf }

// SharedFilter returns the MQTT shared-subscription form of Filter
// ("$share/<group>/<root>/v1/+/<leaf>"), so hub consumers scale out.
func SharedFilter(group, root, leaf string) string {
	return "$share/" + group + "/" + Filter(root, leaf)
}

// ParseTopic splits a topic of the tree under root into agent and leaf.
// It returns ErrBadTopic for anything else, including another version and
// an agent segment that fails ValidateID. Unknown leaves are returned.
func ParseTopic(root, topic string) (agent, leaf string, err error) {
	rest, ok := strings.CutPrefix(topic, root+"/"+Version+"/")
	if !ok {
		return "", "", ErrBadTopic
	}
	agent, leaf, ok = strings.Cut(rest, "/")
	if !ok || leaf == "" || ValidateID("agent", agent) != nil {
		return "", "", ErrBadTopic
	}
	return agent, leaf, nil
}
