package hubalert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Webhook request headers (hub-alerts.md §4).
const (
	HeaderSignature = "X-KioskEdge-Signature" // "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)
	HeaderTimestamp = "X-KioskEdge-Timestamp" // Unix seconds when the attempt was signed
	HeaderAlertID   = "X-KioskEdge-Alert-Id"  // Alert.ID, for receivers that de-duplicate
	HeaderEvent     = "X-KioskEdge-Event"     // "<id>:<state>": the same on every retry of one transition
)

// DefaultReplayWindow is how far a receiver should accept a timestamp
// from its own clock (hub-alerts.md §4.2).
const DefaultReplayWindow = 5 * time.Minute

// Signature errors returned by Verify.
var (
	ErrSignature = errors.New("hubalert: bad webhook signature")
	ErrStale     = errors.New("hubalert: webhook timestamp outside the replay window")
)

// Sign returns the X-KioskEdge-Signature value for body signed at ts
// (the X-KioskEdge-Timestamp value).
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a webhook request as a receiver should: the signature
// over ts + "." + body in constant time (ErrSignature), then ts within
// window of now (ErrStale).
func Verify(secret []byte, ts, sig string, body []byte, now time.Time, window time.Duration) error {
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sig)) {
		return ErrSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > window || -d > window {
		return ErrStale
	}
	return nil
}

// WebhookStats are one receiver's counters.
type WebhookStats struct {
	Name      string `json:"name"`
	Queued    int    `json:"queued"`    // transitions waiting now
	Delivered uint64 `json:"delivered"` // answered 2xx
	Attempts  uint64 `json:"attempts"`  // requests sent
	Failures  uint64 `json:"failures"`  // attempts that failed (error, timeout, non-2xx)
	GaveUp    uint64 `json:"gave_up"`   // transitions abandoned after max_attempts
	Dropped   uint64 `json:"dropped"`   // transitions refused on a full queue
}

type delivery struct {
	event string // id:state
	id    string
	body  []byte
}

// webhook delivers to one receiver from its own goroutine and queue, in
// order, retrying each transition with capped exponential back-off and
// jitter. A slow or dead receiver delays only its own queue.
type webhook struct {
	cfg    Webhook
	client *http.Client
	now    func() time.Time
	after  func(time.Duration) <-chan time.Time
	jitter func(n int64) int64
	log    *slog.Logger
	queue  chan delivery

	mu    sync.Mutex
	stats WebhookStats
}

func newWebhook(cfg Webhook, client *http.Client, now func() time.Time, after func(time.Duration) <-chan time.Time, log *slog.Logger) *webhook {
	return &webhook{
		cfg: cfg, client: client, now: now, after: after, jitter: rand.Int64N,
		log:   log.With("webhook", cfg.Name),
		queue: make(chan delivery, cfg.Queue),
		stats: WebhookStats{Name: cfg.Name},
	}
}

// offer queues d without waiting; a full queue drops it (counted).
func (w *webhook) offer(d delivery) {
	select {
	case w.queue <- d:
	default:
		w.mu.Lock()
		w.stats.Dropped++
		n := w.stats.Dropped
		w.mu.Unlock()
		if isPow2(n) {
			w.log.Warn("alert webhook queue full; transition dropped", "dropped", n)
		}
	}
}

// drain drops the queued deliveries (counted as dropped): Reload calls it
// while run is not running.
func (w *webhook) drain() {
	for {
		select {
		case <-w.queue:
			w.mu.Lock()
			w.stats.Dropped++
			w.mu.Unlock()
		default:
			return
		}
	}
}

func (w *webhook) Stats() WebhookStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Queued = len(w.queue)
	return s
}

func (w *webhook) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-w.queue:
			w.deliver(ctx, d)
		}
	}
}

// backoff returns the wait after the n-th failed attempt (n ≥ 1):
// base = min(max, min·2^(n-1)), then half of it plus a random share of
// the other half ("equal jitter"), so retries of many hubs spread out.
func (w *webhook) backoff(n int) time.Duration {
	base, limit := w.cfg.BackoffMin.D(), w.cfg.BackoffMax.D()
	for i := 1; i < n && base < limit; i++ {
		base *= 2 // stops at the cap, long before it could overflow
	}
	base = min(base, limit)
	half := base / 2
	return half + time.Duration(w.jitter(int64(base-half)+1))
}

func (w *webhook) deliver(ctx context.Context, d delivery) {
	for n := 1; ; n++ {
		err := w.post(ctx, d)
		w.mu.Lock()
		w.stats.Attempts++
		if err == nil {
			w.stats.Delivered++
		} else {
			w.stats.Failures++
		}
		w.mu.Unlock()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if n >= w.cfg.MaxAttempts {
			w.mu.Lock()
			w.stats.GaveUp++
			w.mu.Unlock()
			w.log.Error("alert webhook gave up", "alert", d.id, "attempts", n, "err", err)
			return
		}
		wait := w.backoff(n)
		w.log.Warn("alert webhook failed; retrying", "alert", d.id, "attempt", n, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-w.after(wait):
		}
	}
}

func (w *webhook) post(ctx context.Context, d delivery) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(d.body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kioskedge-hubd")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign([]byte(w.cfg.Secret), ts, d.body))
	req.Header.Set(HeaderAlertID, d.id)
	req.Header.Set(HeaderEvent, d.event)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused; the answer is not read.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hubalert: webhook answered %s", strings.TrimSpace(resp.Status))
	}
	return nil
}
