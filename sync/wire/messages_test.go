package wire_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func TestDecodeAck(t *testing.T) {
	for _, c := range []struct {
		in      string
		through uint64
		ok      bool
	}{
		{`{"agent":"gate-01","through":42}`, 42, true},
		{`{"agent":"gate-01","through":18446744073709551615}`, 1<<64 - 1, true},
		{`{"agent":"gate-01","through":42,"hub":"h2","stored_at":"x"}`, 42, true}, // unknown fields ignored (§2)
		{`{"agent":"gate-01","through":0}`, 0, false},
		{`{"agent":"gate-01"}`, 0, false},
		{`{"agent":"gate-01","through":-1}`, 0, false},
		{`{"agent":"gate-01","through":"42"}`, 0, false},
		{`{"agent":"gate-01","through":1.5}`, 0, false},
		{`{"agent":"gate-01","through":18446744073709551616}`, 0, false},
		{`{"agent":`, 0, false},
		{`[]`, 0, false},
		{``, 0, false},
		{`null`, 0, false},
		{"\xff\xfe", 0, false},
	} {
		a, err := wire.DecodeAck([]byte(c.in))
		if !c.ok {
			if !errors.Is(err, wire.ErrBadMessage) {
				t.Errorf("DecodeAck(%q) = %+v, %v; want ErrBadMessage", c.in, a, err)
			}
			continue
		}
		if err != nil || a.Through != c.through || a.Agent != "gate-01" {
			t.Errorf("DecodeAck(%q) = %+v, %v", c.in, a, err)
		}
	}
}

func TestDecodeStatus(t *testing.T) {
	birth := wire.Status{
		State: wire.StateOnline, Agent: "gate-01", BootID: "b-1", BdSeq: 7,
		Time:    time.Date(2024, 5, 1, 8, 30, 0, 0, time.FixedZone("", 3*3600)),
		Version: "0.3.1", ConfigHash: "sha256:ab12",
		Inventory:    []wire.Device{{Name: "reader-in", Kind: "wiegand", Port: "gpiochip0:17,18"}},
		AckedThrough: 5000,
	}
	b, err := json.Marshal(birth)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.DecodeStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.BdSeq != 7 || got.State != wire.StateOnline || !got.Time.Equal(birth.Time) ||
		len(got.Inventory) != 1 || got.Inventory[0] != birth.Inventory[0] || got.ConfigHash != birth.ConfigHash ||
		got.AckedThrough != 5000 || !strings.Contains(string(b), `"acked_through":5000`) {
		t.Errorf("round trip: got %+v from %s", got, b)
	}
	// The death needs none of the birth's optional fields; an absent
	// acked_through (an older agent) is 0.
	d, err := wire.DecodeStatus([]byte(`{"state":"offline","agent":"gate-01","boot_id":"b-1","bdseq":7,"time":"2024-05-01T08:30:00Z","reason":"will"}`))
	if err != nil || d.State != wire.StateOffline || d.Reason != "will" || d.BdSeq != 7 || d.AckedThrough != 0 {
		t.Errorf("death: %+v, %v", d, err)
	}
	for _, in := range []string{
		`{"state":"sleeping","agent":"a","bdseq":1}`,
		`{"agent":"a","bdseq":1}`,
		`{"state":"online","bdseq":-1}`,
		`{"state":"online","time":"yesterday"}`,
		`null`,
		`"online"`,
		`{`,
		`{"state":"online","pad":"` + strings.Repeat("x", wire.MaxControlMessage) + `"}`,
	} {
		if s, err := wire.DecodeStatus([]byte(in)); !errors.Is(err, wire.ErrBadMessage) {
			t.Errorf("DecodeStatus(%.60q) = %+v, %v; want ErrBadMessage", in, s, err)
		}
	}
}

func TestDecodeHealth(t *testing.T) {
	in := `{"agent":"gate-01","boot_id":"b-1","time":"2024-05-01T08:30:00Z","version":"0.3.1","uptime_s":12.5,
	"outbox":{"depth":10,"oldest_unsent_s":3.25,"disk_bytes":65536,"budget_bytes":1048576,"next_seq":101,"acked_through":90,"evicted":0},
	"uplink":{"connected":true,"reconnects":2,"batches_sent":9,"in_flight":1},
	"devices":[{"name":"reader-in","connected":true,"last_seen":"2024-05-01T08:29:59Z","errors":0}],
	"counters":{"ack_bad":1},"future_field":{"x":1}}`
	h, err := wire.DecodeHealth([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if h.Agent != "gate-01" || h.Outbox.Depth != 10 || h.Outbox.AckedThrough != 90 || h.Outbox.NextSeq != 101 ||
		!h.Uplink.Connected || h.Uplink.Reconnects != 2 || h.Uplink.Batches != 9 || len(h.Devices) != 1 ||
		h.Counters["ack_bad"] != 1 || h.UptimeS != 12.5 {
		t.Errorf("decoded %+v", h)
	}
	for _, in := range []string{`{"outbox":{"depth":-1}}`, `{"uptime_s":"long"}`, `[`, strings.Repeat(" ", wire.MaxControlMessage+1)} {
		if _, err := wire.DecodeHealth([]byte(in)); !errors.Is(err, wire.ErrBadMessage) {
			t.Errorf("DecodeHealth(%.40q): %v; want ErrBadMessage", in, err)
		}
	}
}

// TestControlMessageLimit checks the size bound is exact: a valid ack padded
// to MaxControlMessage bytes is accepted, one byte more is refused.
func TestControlMessageLimit(t *testing.T) {
	base := `{"agent":"a","through":1}`
	ok := base + strings.Repeat(" ", wire.MaxControlMessage-len(base))
	if _, err := wire.DecodeAck([]byte(ok)); err != nil {
		t.Errorf("ack of exactly %d bytes: %v", len(ok), err)
	}
	if _, err := wire.DecodeAck([]byte(ok + " ")); !errors.Is(err, wire.ErrBadMessage) {
		t.Errorf("ack of %d bytes: %v, want ErrBadMessage", len(ok)+1, err)
	}
}

// TestAckShape pins the ack JSON (the command shapes are pinned in
// command_test.go).
func TestAckShape(t *testing.T) {
	a, err := json.Marshal(wire.Ack{Agent: "gate-01", Through: 9})
	if err != nil || string(a) != `{"agent":"gate-01","through":9}` {
		t.Errorf("ack JSON %s, %v", a, err)
	}
}
