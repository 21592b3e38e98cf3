package gpiosim

import (
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
)

var _ gpio.PinIO = (*Line)(nil)

func TestLineEdgesQueuedWithTimes(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	l := NewLine("D0", 17, func() time.Time { return t0 })
	if err := l.In(gpio.PullUp, gpio.FallingEdge); err != nil {
		t.Fatal(err)
	}
	if l.Read() != gpio.High {
		t.Fatal("undriven pulled-up line reads Low")
	}
	if l.WaitForEdge(0) {
		t.Fatal("edge before any change")
	}
	l.Set(gpio.Low)
	l.SetAt(gpio.High, t0.Add(50*time.Microsecond))
	l.SetAt(gpio.Low, t0.Add(2*time.Millisecond))
	if !l.WaitForEdge(0) || !l.LastEdgeTime().Equal(t0) {
		t.Fatalf("first edge: %v", l.LastEdgeTime())
	}
	if !l.WaitForEdge(0) || !l.LastEdgeTime().Equal(t0.Add(2*time.Millisecond)) {
		t.Fatalf("second falling edge: %v", l.LastEdgeTime())
	}
	if l.WaitForEdge(time.Millisecond) {
		t.Fatal("rising edge delivered to falling-edge detection")
	}
	if got := len(l.Edges()); got != 3 {
		t.Fatalf("edge log has %d edges, want 3", got)
	}
}

func TestWaitForEdgeWakesAndReleases(t *testing.T) {
	l := NewLine("D1", 18, nil)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make(chan bool, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		got <- l.WaitForEdge(-1)
	}()
	l.Set(gpio.Low)
	if !<-got {
		t.Fatal("WaitForEdge(-1) returned false on an edge")
	}
	if lv, _ := l.LastEdge(); lv != gpio.Low {
		t.Fatal("edge level not Low")
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		got <- l.WaitForEdge(-1)
	}()
	time.Sleep(time.Millisecond) // let it block; a missed block only makes the test weaker
	if err := l.Halt(); err != nil {
		t.Fatal(err)
	}
	if <-got {
		t.Fatal("WaitForEdge returned true after Halt with no edge")
	}
	wg.Wait()
}

func TestOutIsNotAnInputEdge(t *testing.T) {
	l := NewLine("relay", 5, nil)
	if err := l.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	if l.Read() != gpio.High || l.Function() != "Out" || l.WaitForEdge(0) {
		t.Fatal("Out: wrong level, function or queued edge")
	}
	if err := l.PWM(0, 0); err == nil {
		t.Fatal("PWM succeeded")
	}
}

func TestFrameBuilders(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []bool
		want string
	}{
		// Hand-computed from wiegand.md §4.
		{"H10301 1/1", H10301(1, 1), "1 00000001 0000000000000001 0"},
		{"H10301 255/65535", H10301(255, 65535), "0 11111111 1111111111111111 1"},
		{"34bit 0/0", Bits34(0, 0), "0 0000000000000000 0000000000000000 1"},
		{"H10304 0/1", H10304(0, 1), "0 0000000000000000 0000000000000000001 0"},
	} {
		if s := bitString(tc.got); s != bitString(ParseBits(tc.want)) {
			t.Errorf("%s = %s, want %s", tc.name, s, tc.want)
		}
	}
}

func bitString(b []bool) string {
	s := make([]byte, len(b))
	for i, x := range b {
		s[i] = '0'
		if x {
			s[i] = '1'
		}
	}
	return string(s)
}

func TestScheduleAndTransmit(t *testing.T) {
	bits := H10301(123, 4567)
	ev := Schedule(bits, 0, 0, TxOptions{Glitches: 2, Spurious: 1, Jitter: 100 * time.Microsecond})
	if len(ev) != 2*(len(bits)+3) {
		t.Fatalf("%d edges, want %d", len(ev), 2*(len(bits)+3))
	}
	for i := 1; i < len(ev); i++ {
		if ev[i].At.Before(ev[i-1].At) {
			t.Fatal("schedule out of order")
		}
	}
	if ev := Schedule(bits, 0, 0, TxOptions{Drop: 2}); len(ev) != 2*(len(bits)-2) {
		t.Fatalf("2 dropped bits: %d edges, want %d", len(ev), 2*(len(bits)-2))
	}
	d0, d1 := NewLine("D0", 0, nil), NewLine("D1", 1, nil)
	for _, l := range []*Line{d0, d1} {
		if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	last := Transmit(d0, d1, bits, 50*time.Microsecond, 100*time.Microsecond, TxOptions{NoPace: true, Start: start})
	if want := start.Add(25*100*time.Microsecond + 50*time.Microsecond); !last.Equal(want) {
		t.Fatalf("last edge %v, want %v", last, want)
	}
	ones := 0
	for _, b := range bits {
		if b {
			ones++
		}
	}
	if n0, n1 := len(d0.Edges()), len(d1.Edges()); n0 != 2*(26-ones) || n1 != 2*ones {
		t.Fatalf("D0 %d edges, D1 %d; want %d and %d", n0, n1, 2*(26-ones), 2*ones)
	}
	if d0.Read() != gpio.High || d1.Read() != gpio.High {
		t.Fatal("lines not back to idle High")
	}
}
