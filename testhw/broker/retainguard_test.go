package broker

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Retained publishes racing subscribes to the same topics, as agents and
// hubs do on every reconnect. Under -race, mochi v2.7.9 without the
// retainGuard reports a data race in its topic index here (upstream issue
// #200); with it the run is clean and every subscriber still gets the
// retained messages.
func TestMochiRetainedPublishesRacingSubscribes(t *testing.T) {
	b := ForTest(t, Options{Kind: Mochi})
	dial := func(id string) paho.Client {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID(id).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	pub := dial("publisher")
	topics := []string{"r/v1/a/ack", "r/v1/a/status", "r/v1/b/ack", "r/v1/b/status"}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 300 {
			tok := pub.Publish(topics[i%len(topics)], 1, true, fmt.Appendf(nil, "%d", i))
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Errorf("publish %d: %v", i, tok.Error())
				return
			}
		}
	})
	got := make([]int, 3)
	var mu sync.Mutex
	for s := range len(got) {
		c := dial(fmt.Sprintf("subscriber-%d", s))
		wg.Go(func() {
			for range 40 {
				tok := c.Subscribe("r/v1/+/ack", 1, func(paho.Client, paho.Message) { mu.Lock(); got[s]++; mu.Unlock() })
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Errorf("subscribe: %v", tok.Error())
					return
				}
				c.Subscribe("r/v1/a/status", 1, nil).WaitTimeout(10 * time.Second)
				c.Unsubscribe("r/v1/+/ack", "r/v1/a/status").WaitTimeout(10 * time.Second)
			}
		})
	}
	wg.Wait()
	// Retained acks exist from the first publishes on, so every subscriber
	// must have received some on its 40 subscriptions.
	mu.Lock()
	defer mu.Unlock()
	for s, n := range got {
		if n == 0 {
			t.Errorf("subscriber %d never received a retained message", s)
		}
	}
}

// Closing the broker while clients are leaving must not hang. mochi
// v2.7.9's own close-clients path takes its clients' read lock twice and
// deadlocks when a leaving client queues for the write lock in between;
// the harness closes client sockets itself instead.
func TestMochiCloseWhileClientsLeave(t *testing.T) {
	for round := range 25 {
		b, err := Start(Options{Kind: Mochi})
		if err != nil {
			t.Fatal(err)
		}
		var clients []paho.Client
		for i := range 6 {
			c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).
				SetClientID(fmt.Sprintf("leaver-%d-%d", round, i)).SetAutoReconnect(false))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			clients = append(clients, c)
		}
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() { c.Disconnect(0) })
		}
		closed := make(chan error, 1)
		go func() { closed <- b.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("round %d: close: %v", round, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: closing the broker while clients left hung", round)
		}
		wg.Wait()
	}
}
