package faultproxy

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

// TestBetweenClientAndBroker puts the proxy between an MQTT client and each
// broker kind: a session works through it, Cut drops it, and Refuse makes
// reconnecting fail until lifted.
func TestBetweenClientAndBroker(t *testing.T) {
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		p, err := New(b.Addr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		lost := make(chan struct{}, 1)
		opts := paho.NewClientOptions().AddBroker(p.URL()).
			SetClientID(fmt.Sprintf("faultproxy-%s", b.Kind())).
			SetAutoReconnect(false).SetConnectTimeout(2 * time.Second).
			SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} })
		// A fresh client per attempt, as the uplink's session does: paho's
		// client state after a failed Connect may still be settling, and a
		// second Connect on it can fail for that reason alone.
		var c paho.Client
		connect := func() error {
			c = paho.NewClient(opts)
			tok := c.Connect()
			if !tok.WaitTimeout(10 * time.Second) {
				return fmt.Errorf("connect timed out")
			}
			return tok.Error()
		}
		if err := connect(); err != nil {
			t.Fatalf("connect through the proxy: %v", err)
		}
		got := make(chan string, 1)
		if tok := c.Subscribe("kioskedge/proxy", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		if tok := c.Publish("kioskedge/proxy", 1, false, "through"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		select {
		case m := <-got:
			if m != "through" {
				t.Fatalf("got %q", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no message through the proxy")
		}
		p.SetRefuse(true)
		p.Cut()
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("client did not notice the cut")
		}
		if err := connect(); err == nil {
			t.Fatal("connected through a refusing proxy")
		}
		p.SetRefuse(false)
		if err := connect(); err != nil {
			t.Fatalf("reconnect after the partition: %v", err)
		}
		c.Disconnect(50)
		if st := p.Stats(); st.Cuts != 1 || st.Refused < 1 || st.BytesUp == 0 || st.BytesDown == 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}
