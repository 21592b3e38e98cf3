package localapi

import (
	"container/list"
	"sync"
	"time"
)

// idemCache remembers the responses of recent Idempotency-Keys: bounded
// (the oldest key goes first) and with a TTL.
type idemCache struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	byKey map[string]*list.Element
	order *list.List // of *idemEntry, oldest first
}

type idemEntry struct {
	key         string
	fingerprint [32]byte
	created     time.Time
	done        chan struct{} // closed when status/body are set or the attempt failed
	ok          bool          // a response worth replaying was stored
	status      int
	body        []byte
}

func newIdemCache(max int, ttl time.Duration, now func() time.Time) *idemCache {
	return &idemCache{max: max, ttl: ttl, now: now, byKey: map[string]*list.Element{}, order: list.New()}
}

// begin returns the entry for key: existing (the caller waits on done and
// replays it) or new (the caller owns it and must call finish or abandon).
func (c *idemCache) begin(key string, fp [32]byte) (e *idemEntry, owner bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.evict(func(old *idemEntry) bool { return now.Sub(old.created) >= c.ttl })
	if el, ok := c.byKey[key]; ok {
		return el.Value.(*idemEntry), false
	}
	c.evict(func(*idemEntry) bool { return c.order.Len() >= c.max })
	e = &idemEntry{key: key, fingerprint: fp, created: now, done: make(chan struct{})}
	c.byKey[key] = c.order.PushBack(e)
	return e, true
}

// evict drops the oldest entries while drop says so; c.mu is held.
func (c *idemCache) evict(drop func(*idemEntry) bool) {
	for f := c.order.Front(); f != nil && drop(f.Value.(*idemEntry)); f = c.order.Front() {
		c.order.Remove(f)
		delete(c.byKey, f.Value.(*idemEntry).key)
	}
}

// finish stores the response to replay for e's key.
func (c *idemCache) finish(e *idemEntry, status int, body []byte) {
	c.mu.Lock()
	e.ok, e.status, e.body = true, status, body
	c.mu.Unlock()
	close(e.done)
}

// abandon forgets e: the attempt failed and a retry may do better.
func (c *idemCache) abandon(e *idemEntry) {
	c.mu.Lock()
	if el, ok := c.byKey[e.key]; ok && el.Value == e {
		c.order.Remove(el)
		delete(c.byKey, e.key)
	}
	c.mu.Unlock()
	close(e.done)
}
