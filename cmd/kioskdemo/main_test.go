package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/broker"
)

// Two gates and the virtual kiosk.
var summaryLine = regexp.MustCompile(`^summary: agents=3 produced=(\d+) delivered=(\d+) duplicates=(\d+) lost=0$`)

var kioskLine = regexp.MustCompile(`^kiosk: transactions=(\d+) printed=(\d+) events=\d+$`)

// TestDemoLosesNothing runs the demo as the README tells a newcomer to,
// shortened: two agents, faults on (broker restart, connection cut,
// partition), on each broker kind, with the virtual kiosk whose scripted
// resident goes through insert → read → transaction → print over the
// local API. Every produced record, kiosk transactions included, must
// reach the hub.
func TestDemoLosesNothing(t *testing.T) {
	for _, kind := range []broker.Kind{broker.Mochi, broker.Mosquitto} {
		t.Run(string(kind), func(t *testing.T) {
			if kind == broker.Mosquitto {
				requireMosquitto(t)
			}
			t.Parallel()
			// Bounds the whole run: 4s of traffic plus the drain. A run
			// normally drains in about a second; the drain bound also covers
			// a known stall of up to 15s (paho's write timeout) when the
			// hub's ack publish blocks in paho's Publish across the broker
			// restart.
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			var out bytes.Buffer
			f := flags{
				duration:     4 * time.Second,
				agents:       2,
				rate:         100,
				brokerKind:   string(kind),
				faults:       true,
				dir:          t.TempDir(),
				drainTimeout: 25 * time.Second,
				kiosk:        true,
			}
			code, err := run(ctx, f, &out)
			if code != 0 || err != nil {
				t.Fatalf("run: exit %d, err %v; output:\n%s", code, err, &out)
			}
			text := out.String()
			for _, fault := range []string{"fault: restarting the broker", "fault: cutting every agent connection",
				"fault: partition — agents cannot reach the broker", "fault: partition healed"} {
				if !strings.Contains(text, fault) {
					t.Errorf("output lacks %q: the faults did not all run", fault)
				}
			}
			lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
			if len(lines) < 2 {
				t.Fatalf("output too short:\n%s", text)
			}
			k := kioskLine.FindStringSubmatch(lines[len(lines)-2])
			if k == nil {
				t.Fatalf("line before the summary %q does not match %s; output:\n%s", lines[len(lines)-2], kioskLine, text)
			}
			txs, _ := strconv.ParseUint(k[1], 10, 64)     // digits only
			printed, _ := strconv.ParseUint(k[2], 10, 64) // ditto
			if txs == 0 || printed != txs {
				t.Errorf("kiosk: transactions=%d printed=%d; want at least one visit, each printed", txs, printed)
			}
			if strings.Contains(text, "kiosk: visit") {
				t.Errorf("a kiosk visit failed; output:\n%s", text)
			}
			if !strings.Contains(text, "kiosk: demo kiosk page http://127.0.0.1:") {
				t.Errorf("output does not give the kiosk page's URL")
			}
			last := lines[len(lines)-1]
			m := summaryLine.FindStringSubmatch(last)
			if m == nil {
				t.Fatalf("last line %q does not match %s; output:\n%s", last, summaryLine, text)
			}
			t.Log(last)
			produced, _ := strconv.ParseUint(m[1], 10, 64)  // the regexp admits digits only
			delivered, _ := strconv.ParseUint(m[2], 10, 64) // ditto
			if produced <= txs || delivered != produced {
				t.Errorf("produced=%d delivered=%d; want produced > 0 and every record delivered", produced, delivered)
			}
		})
	}
}

// requireMosquitto skips loudly when the mosquitto binary is missing, and
// fails under CI, which must install it (as broker.ForTest does).
func requireMosquitto(t *testing.T) {
	t.Helper()
	_, err := broker.MosquittoPath()
	if err == nil {
		return
	}
	if !errors.Is(err, broker.ErrMosquittoNotFound) {
		t.Fatal(err)
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%v; CI must install it: apt-get install -y mosquitto", err)
	}
	t.Skip("\n\n*** SKIPPED: mosquitto not installed: apt-get install -y mosquitto " +
		"(CI installs it; this test is skipped only outside CI) ***\n")
}
