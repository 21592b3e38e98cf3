package uplink

import (
	"context"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/faultproxy"
)

// PublishAsync must not block its caller when the link stalls: the hub
// calls it from its commit loop. Through a black-holed proxy, 40 publishes
// of 256 KiB overflow every socket buffer on the way. paho's own Publish
// would then block for its write timeout (15 s) and the connection would be
// dropped; queued behind the sender, the calls all return while the link is
// still black-holed and the connection still up. Once the hole lifts,
// every publish is acknowledged, in order.
func TestPublishAsyncDoesNotBlockOnAStalledLink(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	p, err := faultproxy.New(b.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	s, err := NewSession(SessionOptions{Broker: p.URL(), ClientID: "stall", AllowPlaintext: true,
		KeepAlive: time.Minute, Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-runDone })
	waitFor(t, "connected", s.Connected)

	p.SetBlackHole(true)
	payload := make([]byte, 256<<10)
	dones := make([]<-chan error, 40)
	for i := range dones {
		dones[i] = s.PublishAsync(Message{Topic: "stall/x", QoS: 1, Payload: payload})
	}
	if st := s.Stats(); !s.Connected() || st.ConnectionsLost != 0 {
		t.Fatalf("the publishing calls outlived the connection: connected=%v %+v", s.Connected(), st)
	}
	for i, d := range dones {
		select {
		case err := <-d:
			t.Fatalf("publish %d finished while the link was black-holed: %v", i, err)
		default:
		}
	}
	p.SetBlackHole(false)
	for i, d := range dones {
		select {
		case err := <-d:
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("publish %d never acknowledged after the hole lifted", i)
		}
	}
}
