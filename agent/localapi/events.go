package localapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Event is one /v1/events message.
type Event struct {
	Type   string         `json:"type"` // card.inserted, card.removed, card.read, code.scanned, device.up, device.down, printer.status
	Device string         `json:"device"`
	Time   time.Time      `json:"time"`
	Data   map[string]any `json:"data,omitempty"` // code.scanned: {"data": payload}; printer.status: {"detail": …}
}

// Broadcaster fans events out to the WebSocket clients. Publish never
// blocks: a subscriber EventBuffer events behind is dropped.
type Broadcaster struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// NewBroadcaster returns a broadcaster with no subscribers.
func NewBroadcaster() *Broadcaster { return &Broadcaster{subs: map[chan Event]struct{}{}} }

// Publish sends e to every subscriber; a subscriber whose buffer is full
// is closed (its client is disconnected).
func (b *Broadcaster) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Subscribers returns how many clients are subscribed.
func (b *Broadcaster) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// subscribe returns a channel of events and the function that ends the
// subscription.
func (b *Broadcaster) subscribe() (<-chan Event, func()) {
	ch := make(chan Event, EventBuffer)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
		b.mu.Unlock()
	}
}

const wsProtocol = "kioskedge.v1"

// wsToken is the token offered as the subprotocol "bearer.<token>".
func wsToken(r *http.Request) string {
	for _, p := range websocket.Subprotocols(r) {
		if t, ok := strings.CutPrefix(p, "bearer."); ok {
			return t
		}
	}
	return ""
}

var upgrader = websocket.Upgrader{
	Subprotocols: []string{wsProtocol},
	// The bearer token is the guard; the kiosk page's origin varies by
	// vendor (file://, a local web server).
	CheckOrigin: func(*http.Request) bool { return true },
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	s.wsMu.Lock()
	if s.closing {
		s.wsMu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the agent is stopping")
		return
	}
	s.wsWG.Add(1)
	s.wsMu.Unlock()
	defer s.wsWG.Done()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader wrote the error response
	}
	nc := conn.NetConn()
	s.wsMu.Lock()
	if s.closing {
		s.wsMu.Unlock()
		_ = conn.Close() // stopping
		return
	}
	s.wsConns[nc] = struct{}{}
	s.wsMu.Unlock()
	defer func() {
		s.wsMu.Lock()
		delete(s.wsConns, nc)
		s.wsMu.Unlock()
		_ = conn.Close() // done with it either way
	}()
	events, unsubscribe := s.events.subscribe()
	defer unsubscribe()
	// The reader notices the client's close (or our own conn.Close).
	gone := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		defer close(gone)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	})
	defer func() { _ = conn.Close() }() // ends the reader before wg.Wait
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				_ = conn.WriteControl(websocket.CloseMessage, // best effort: we drop the client anyway
					websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "too slow"), time.Now().Add(time.Second))
				return
			}
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second)) // only fails on a closed conn, seen by WriteJSON
			if err := conn.WriteJSON(e); err != nil {
				return
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
				return
			}
		case <-gone:
			return
		}
	}
}

// watchHealth turns changes in the devices' health into device.up,
// device.down and printer.status (detail changes) events.
func (s *Server) watchHealth(ctx context.Context) {
	type state struct {
		up     bool
		detail string
	}
	last := map[string]state{}
	t := time.NewTicker(healthWatchInterval)
	defer t.Stop()
	for {
		for _, d := range s.o.Health.Health() {
			prev, seen := last[d.Name]
			cur := state{d.Connected, d.Detail}
			last[d.Name] = cur
			if !seen {
				continue
			}
			now := s.o.Now()
			if prev.up != cur.up {
				typ := "device.down"
				if cur.up {
					typ = "device.up"
				}
				s.events.Publish(Event{Type: typ, Device: d.Name, Time: now, Data: map[string]any{"detail": d.Detail}})
			} else if prev.detail != cur.detail && strings.HasPrefix(cur.detail, "escpos") {
				s.events.Publish(Event{Type: "printer.status", Device: d.Name, Time: now, Data: map[string]any{"detail": d.Detail}})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
