package hubalert

import (
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// FuzzEngineRecord feeds arbitrary bodies under the kinds the engine reads
// (seeded from gate-records.md and agent/devices bodies): it must never
// panic, and a record repeated must never produce a second transition.
func FuzzEngineRecord(f *testing.F) {
	for _, s := range []struct {
		kind, body string
	}{
		{"door.alarm", `{"door":"d1","alarm":"forced_open","active":true}`},
		{"door.alarm", `{"door":"d1","alarm":"repeated_denials","active":true,"reader":"in","denials":5}`},
		{"door.alarm", `{"door":"","alarm":"fire","active":false}`},
		{"door.alarm", `{"door":"d1","alarm":"relay_fault","active":true,"op":"release","error":"gpio: write failed"}`},
		{"device.down", `{"name":"printer","kind":"escpos","connected":false,"down":true,"errors":3,"reconnects":1}`},
		{"device.up", `{"name":"printer","kind":"escpos","connected":true}`},
		{"device.local_status", `{"name":"osdp1","kind":"osdp","tamper":true,"power_failure":false}`},
		{"door.alarm", `{"door":1}`},
		{"device.down", `[]`},
	} {
		f.Add(s.kind, []byte(s.body), uint64(7))
	}
	f.Fuzz(func(t *testing.T, kind string, body []byte, seq uint64) {
		e := NewEngine(DefaultRules())
		r := wire.Record{Seq: seq, Agent: "a1", Kind: kind, Class: wire.ClassCritical, Time: t0, Body: body}
		e.Record(r, t0)
		if out := e.Record(r, t0.Add(time.Second)); len(out) != 0 {
			t.Fatalf("the same record again gave %+v", out)
		}
	})
}
