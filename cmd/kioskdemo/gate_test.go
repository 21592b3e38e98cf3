package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/broker"
)

var gateSummaryLine = regexp.MustCompile(`^gate: summary swipes=(\d+) granted=(\d+) denied=(\d+) bad_frames=(\d+) alarms=(\S+) remote_opens=(\d+) decisions_at_hub=(\d+)$`)

// TestDemoSmartGate runs the demo with one producing agent and the virtual
// smart gate, no kiosk and no faults: the gate fetches the residents' list
// from the hub, residents swipe, one props the door open, a second list
// version arrives as a delta, the hotline opens a door with a signed
// command and the fire alarm releases every door. The gate's summary must
// show each outcome, the hub must hold a decision per swipe and every
// record, and no card number may be printed whole.
func TestDemoSmartGate(t *testing.T) {
	t.Parallel()
	// The script takes about 10 s (a 4 s held-open alarm, a 1 s fire);
	// the bound covers a slow machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	f := flags{
		duration:     2 * time.Second,
		agents:       1,
		rate:         50,
		brokerKind:   string(broker.Mochi),
		dir:          t.TempDir(),
		drainTimeout: 20 * time.Second,
		gate:         true,
	}
	code, err := run(ctx, f, &out)
	text := out.String()
	if code != 0 || err != nil {
		t.Fatalf("run: exit %d, err %v; output:\n%s", code, err, text)
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("output too short:\n%s", text)
	}
	m := gateSummaryLine.FindStringSubmatch(lines[len(lines)-2])
	if m == nil {
		t.Fatalf("line before the summary %q does not match %s; output:\n%s", lines[len(lines)-2], gateSummaryLine, text)
	}
	n := func(i int) int {
		v, _ := strconv.Atoi(m[i]) // the regexp admits digits only
		return v
	}
	// The script: 6 residents and staff let in (one of them after the
	// delta), 2 unknown cards, 2 expired, the resident who moved out, and
	// one garbled frame.
	want := map[string]int{"swipes": 12, "granted": 6, "denied": 5, "bad_frames": 1, "remote_opens": 1, "decisions_at_hub": 12}
	got := map[string]int{"swipes": n(1), "granted": n(2), "denied": n(3), "bad_frames": n(4), "remote_opens": n(6), "decisions_at_hub": n(7)}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s=%d, want %d", k, got[k], w)
		}
	}
	if m[5] != "fire:1,held_open:1" {
		t.Errorf("alarms=%s, want fire:1,held_open:1", m[5])
	}
	for _, s := range []string{
		"gate: allowlist v1 pushed by the hub",
		"→ denied (unknown)", "→ denied (expired)", "→ denied (bad_frame)",
		"→ held_open alarm (at the hub)", "held_open cleared",
		"gate: allowlist v2 (one resident moved out, one moved in) pushed by the hub as a delta (1 upserts, 1 deletes)",
		"gate: hotline operator opened door side remotely", "Ed25519-signed) → ok",
		"gate: FIRE ALARM → every door released (main, side)", "gate: fire alarm cleared → every door secured",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	last := lines[len(lines)-1]
	sm := regexp.MustCompile(`^summary: agents=2 produced=(\d+) delivered=(\d+) duplicates=\d+ lost=0$`).FindStringSubmatch(last)
	if sm == nil || sm[1] != sm[2] {
		t.Errorf("last line %q: want agents=2, every produced record delivered, none lost", last)
	}
	// Card numbers appear masked only: neither in the decoder's form nor
	// in the list's short form.
	for _, c := range demoCards() {
		for _, whole := range []string{c.number(), fmt.Sprintf("%d-%d", c.fac, c.num)} {
			if strings.Contains(text, whole) {
				t.Errorf("the output shows card %s whole", c.masked())
			}
		}
		if !strings.Contains(c.masked(), "***") {
			t.Errorf("mask %q hides nothing", c.masked())
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
}
