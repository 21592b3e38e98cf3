package main

import (
	"strings"
	"testing"
	"time"
)

func TestLiveness(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	prog := func(n uint64) [6]uint64 { return [6]uint64{n} }
	// WatchdogSec 60 s, pings every 30 s, AckTimeout 15 s.
	tests := []struct {
		name    string
		samples []liveSample
		want    string // "" alive at the last sample, else a substring of the error
	}{
		{"idle box", []liveSample{{Now: at(0)}, {Now: at(30)}, {Now: at(600)}}, ""},
		{"probe committed in time", []liveSample{{Now: at(30), ProbeSince: at(29)}}, ""},
		{"probe stuck", []liveSample{{Now: at(60), ProbeSince: at(29)}}, "outbox committer stuck"},
		{"hub silent but drain resending", []liveSample{
			{Now: at(0), UplinkConnected: true, UplinkWork: true, UplinkProgress: prog(1)},
			{Now: at(60), UplinkConnected: true, UplinkWork: true, UplinkProgress: prog(2)},
			{Now: at(120), UplinkConnected: true, UplinkWork: true, UplinkProgress: prog(3)},
		}, ""},
		{"drain stuck", []liveSample{
			{Now: at(0), UplinkConnected: true, UplinkWork: true, UplinkProgress: prog(1)},
			{Now: at(30), UplinkConnected: true, UplinkWork: true, UplinkProgress: prog(1)},
			{Now: at(76), UplinkConnected: true, UplinkWork: true, UplinkProgress: prog(1)},
		}, "uplink drain stuck"},
		{"drain quiet within ack timeout + period", []liveSample{
			{Now: at(0), UplinkConnected: true, UplinkWork: true, UplinkProgress: prog(1)},
			{Now: at(74), UplinkConnected: true, UplinkWork: true, UplinkProgress: prog(1)},
		}, ""},
		{"disconnected is not hung", []liveSample{
			{Now: at(0), UplinkWork: true, UplinkProgress: prog(1)},
			{Now: at(600), UplinkWork: true, UplinkProgress: prog(1)},
		}, ""},
		{"nothing to send is not hung", []liveSample{
			{Now: at(0), UplinkConnected: true, UplinkProgress: prog(1)},
			{Now: at(600), UplinkConnected: true, UplinkProgress: prog(1)},
		}, ""},
		{"reconnected with work starts the clock again", []liveSample{
			{Now: at(0), UplinkWork: true},
			{Now: at(500), UplinkConnected: true, UplinkWork: true},
			{Now: at(560), UplinkConnected: true, UplinkWork: true},
		}, ""},
		{"main loop ticking", []liveSample{{Now: at(30), MainLoopAt: at(29)}}, ""},
		{"main loop stuck", []liveSample{{Now: at(60), MainLoopAt: at(29)}}, "main loop stuck"},
		{"gate writer stuck", []liveSample{
			{Now: at(0), GateQueued: 3, GateDone: 10},
			{Now: at(61), GateQueued: 3, GateDone: 10},
		}, "gate record writer stuck"},
		{"gate writer busy", []liveSample{
			{Now: at(0), GateQueued: 3, GateDone: 10},
			{Now: at(61), GateQueued: 3, GateDone: 11},
			{Now: at(120), GateQueued: 5, GateDone: 12},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &liveness{period: time.Minute, ackTimeout: 15 * time.Second}
			var err error
			for _, s := range tt.samples {
				err = l.check(s)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("hung: %v; want alive", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err %v; want %q", err, tt.want)
			}
		})
	}
}
