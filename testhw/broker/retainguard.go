package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// retainGuard works around a data race in mochi v2.7.9 (upstream issue
// mochi-mqtt/server#200): storing a retained message writes a topic node
// under that node's lock, while a SUBSCRIBE scans the same nodes for
// retained messages without it. Our protocol does both all the time
// (retained acks, births and Wills; agents and hubs subscribing on every
// reconnect), so under -race any broker test could fail on the broker's
// code, not ours.
//
// The guard serialises the two: every retained write (a client's retained
// PUBLISH, a retained Will) holds mu exclusively from before mochi
// processes it until after; every SUBSCRIBE holds it shared. mochi hands a
// client's packets to OnPacketRead and then, on the same goroutine, to
// processing and OnPacketProcessed; a Will is bracketed by OnWill and
// OnWillSent. mochi never blocks on delivery (a full client queue drops),
// so holding mu across processing cannot deadlock.
//
// A packet that fails mochi's validation skips OnPacketProcessed, so the
// guard takes mu only for packets that pass the same validation first. A
// Will with a delay (MQTT 5 only) skips OnWillSent, so it is not guarded;
// our clients speak 3.1.1 and never set one.
type retainGuard struct {
	mqtt.HookBase
	topicAliasMax uint16
	mu            sync.RWMutex
}

func (*retainGuard) ID() string { return "kioskedge-retain-guard" }

func (*retainGuard) Provides(b byte) bool {
	switch b {
	case mqtt.OnPacketRead, mqtt.OnPacketProcessed, mqtt.OnWill, mqtt.OnWillSent:
		return true
	}
	return false
}

// guarded says how pk is guarded: 'w' for a valid retained PUBLISH, 'r'
// for a valid SUBSCRIBE, 0 for anything else.
func (g *retainGuard) guarded(pk packets.Packet) byte {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Retain && pk.PublishValidate(g.topicAliasMax) == packets.CodeSuccess {
			return 'w'
		}
	case packets.Subscribe:
		if pk.SubscribeValidate() == packets.CodeSuccess {
			return 'r'
		}
	}
	return 0
}

func (g *retainGuard) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch g.guarded(pk) {
	case 'w':
		g.mu.Lock()
	case 'r':
		g.mu.RLock()
	}
	return pk, nil
}

func (g *retainGuard) OnPacketProcessed(_ *mqtt.Client, pk packets.Packet, _ error) {
	switch g.guarded(pk) {
	case 'w':
		g.mu.Unlock()
	case 'r':
		g.mu.RUnlock()
	}
}

func (g *retainGuard) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.Retain && will.WillDelayInterval == 0 {
		g.mu.Lock()
	}
	return will, nil
}

func (g *retainGuard) OnWillSent(_ *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Retain {
		g.mu.Unlock()
	}
}
