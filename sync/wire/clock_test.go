package wire

import (
	"errors"
	"testing"
	"time"
)

func TestClockOffset(t *testing.T) {
	t1 := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                  string
		t2, t3, t4            time.Duration // after t1 on the agent's scale
		hubAhead              time.Duration
		wantOffset, wantDelay time.Duration
	}{
		{"in step", 10 * time.Millisecond, 11 * time.Millisecond, 21 * time.Millisecond, 0, 0, 20 * time.Millisecond},
		{"hub 3s ahead", 10 * time.Millisecond, 11 * time.Millisecond, 21 * time.Millisecond, 3 * time.Second, 3 * time.Second, 20 * time.Millisecond},
		{"hub 2s behind", 5 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, -2 * time.Second, -2 * time.Second, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ClockReply{ID: "x", Sent: t1, Received: t1.Add(tc.t2 + tc.hubAhead), Replied: t1.Add(tc.t3 + tc.hubAhead)}
			off, delay := ClockOffset(r, t1.Add(tc.t4))
			if off != tc.wantOffset || delay != tc.wantDelay {
				t.Fatalf("offset %v delay %v, want %v %v", off, delay, tc.wantOffset, tc.wantDelay)
			}
		})
	}
}

func TestDecodeClockMessages(t *testing.T) {
	if _, err := DecodeClockRequest([]byte(`{"id":"a","sent":"2026-11-28T08:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{}`, `{"id":"a"}`, `not json`, `{"sent":"2026-11-28T08:00:00Z"}`} {
		if _, err := DecodeClockRequest([]byte(bad)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("request %s: %v", bad, err)
		}
	}
	if _, err := DecodeClockReply([]byte(`{"id":"a","sent":"2026-11-28T08:00:00Z"}`)); !errors.Is(err, ErrBadMessage) {
		t.Errorf("reply without hub times: %v", err)
	}
	tp := Topics{Root: "r", Agent: "a"}
	if tp.ClockRequest() != "r/v1/a/time/req" || tp.ClockReply() != "r/v1/a/time" {
		t.Fatal(tp.ClockRequest(), tp.ClockReply())
	}
}

func FuzzDecodeClock(f *testing.F) {
	f.Add([]byte(`{"id":"a1b2","sent":"2026-11-28T08:00:00.123456789+08:00"}`))
	f.Add([]byte(`{"id":"a1b2","sent":"2026-11-28T08:00:00Z","received":"2026-11-28T08:00:01Z","replied":"2026-11-28T08:00:01.5Z"}`))
	f.Add([]byte(`{"id":"","sent":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeClockRequest(b); err == nil && (r.ID == "" || len(r.ID) > 64 || r.Sent.IsZero()) {
			t.Fatalf("accepted a bad request %+v", r)
		}
		if r, err := DecodeClockReply(b); err == nil {
			if r.ID == "" || r.Received.IsZero() {
				t.Fatalf("accepted a bad reply %+v", r)
			}
			ClockOffset(r, r.Replied) // never panics
		}
	})
}
