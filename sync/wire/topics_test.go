package wire_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func TestTopicsTree(t *testing.T) {
	tp := wire.Topics{Root: "kioskedge/prov-a", Agent: "gate-01"}
	for _, c := range []struct{ got, want string }{
		{tp.Status(), "kioskedge/prov-a/v1/gate-01/status"},
		{tp.Events(), "kioskedge/prov-a/v1/gate-01/events"},
		{tp.Health(), "kioskedge/prov-a/v1/gate-01/health"},
		{tp.Ack(), "kioskedge/prov-a/v1/gate-01/ack"},
		{tp.Cmd(), "kioskedge/prov-a/v1/gate-01/cmd"},
		{tp.CmdResult(), "kioskedge/prov-a/v1/gate-01/cmd/result"},
		{tp.Allowlist(), "kioskedge/prov-a/v1/gate-01/allowlist"},
		{wire.Filter("ke", wire.LeafEvents), "ke/v1/+/events"},
		{wire.Filter("ke/p", wire.LeafCmdResult), "ke/p/v1/+/cmd/result"},
		{wire.SharedFilter("hubd", "ke", wire.LeafEvents), "$share/hubd/ke/v1/+/events"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestParseTopic(t *testing.T) {
	const root = "kioskedge/prov-a"
	for _, c := range []struct {
		topic, agent, leaf string
		ok                 bool
	}{
		{"kioskedge/prov-a/v1/gate-01/events", "gate-01", "events", true},
		{"kioskedge/prov-a/v1/gate-01/status", "gate-01", "status", true},
		{"kioskedge/prov-a/v1/k/cmd/result", "k", "cmd/result", true},
		// Unknown leaves are returned: a newer peer may add topics (§2).
		{"kioskedge/prov-a/v1/gate-01/future", "gate-01", "future", true},
		{"kioskedge/prov-a/v2/gate-01/events", "", "", false},   // another major version
		{"kioskedge/prov-b/v1/gate-01/events", "", "", false},   // another root
		{"kioskedge/prov-a/v1/gate-01", "", "", false},          // no leaf
		{"kioskedge/prov-a/v1/gate-01/", "", "", false},         // empty leaf
		{"kioskedge/prov-a/v1//events", "", "", false},          // empty agent
		{"kioskedge/prov-a/v1/$bad/events", "", "", false},      // agent fails ValidateID
		{"kioskedge/prov-a/v1/bad agent/events", "", "", false}, // whitespace
		{"kioskedge/prov-a/v1/+/events", "", "", false},         // a filter, not a topic
		{"kioskedge/prov-a/v1", "", "", false},
		{"", "", "", false},
		{"kioskedge/prov-av1/x/events", "", "", false},
	} {
		agent, leaf, err := wire.ParseTopic(root, c.topic)
		if !c.ok {
			if !errors.Is(err, wire.ErrBadTopic) {
				t.Errorf("ParseTopic(%q) = %q, %q, %v; want ErrBadTopic", c.topic, agent, leaf, err)
			}
			continue
		}
		if err != nil || agent != c.agent || leaf != c.leaf {
			t.Errorf("ParseTopic(%q) = %q, %q, %v; want %q, %q", c.topic, agent, leaf, err, c.agent, c.leaf)
		}
	}
}

func TestParseTopicRoundTrip(t *testing.T) {
	tp := wire.Topics{Root: "r", Agent: "a.b_c-9"}
	for _, topic := range []string{tp.Status(), tp.Events(), tp.Health(), tp.Ack(), tp.Cmd(), tp.CmdResult(), tp.Allowlist()} {
		agent, leaf, err := wire.ParseTopic(tp.Root, topic)
		if err != nil || agent != tp.Agent || tp.Root+"/v1/"+agent+"/"+leaf != topic {
			t.Errorf("ParseTopic(%q) = %q, %q, %v", topic, agent, leaf, err)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"gate-01", true},
		{"kiosk_3.prov-a", true},
		{"ÉCOLE-7", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"$SYS", false},
		{"a$", true},
		{"a/b", false},
		{"a+b", false},
		{"a#", false},
		{"a b", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\x00b", false},
	} {
		err := wire.ValidateID("agent", c.id)
		if (err == nil) != c.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", c.id, err, c.ok)
		}
	}
}
