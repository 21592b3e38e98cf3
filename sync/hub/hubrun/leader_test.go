package hubrun

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubalert"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/pgtest"
)

// hotline is a webhook receiver that checks signatures and keeps the
// events (X-KioskEdge-Event) in arrival order.
type hotline struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	events []string
}

func (h *hotline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = hubalert.Verify([]byte(h.secret), r.Header.Get(hubalert.HeaderTimestamp), r.Header.Get(hubalert.HeaderSignature),
			body, time.Now(), hubalert.DefaultReplayWindow)
	}
	if err != nil {
		h.t.Errorf("hotline: %v", err)
		http.Error(w, "bad", http.StatusUnauthorized)
		return
	}
	h.mu.Lock()
	h.events = append(h.events, r.Header.Get(hubalert.HeaderEvent))
	h.mu.Unlock()
}

func (h *hotline) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

func startLeadHub(t *testing.T, url, dsn, clientID string, rules hubalert.Rules) *running {
	t.Helper()
	r := runHub(t, Config{Broker: url, AllowPlaintext: true, Backoff: fast, ClientID: clientID,
		Root: root, DB: dsn, ShareGroup: "hubs", NoClock: true, Alerts: &rules})
	if r.srv.Leader() == nil {
		t.Fatal("alerts on PostgreSQL without a leader election")
	}
	return r
}

// startAlarmAgent runs an agent (outbox and uplink) whose outbox holds n
// forced-open door alarms, doors d1..dn, each sent in a batch of its own.
func startAlarmAgent(t *testing.T, url, id string, n int) {
	t.Helper()
	startUplinkAgent(t, url, id, 1, func(a *outboxAgent) {
		for i := range n {
			_, err := a.ob.Append(context.Background(), wire.Record{Kind: "door.alarm", Class: wire.ClassCritical, Time: time.Now(),
				Body: fmt.Appendf(nil, `{"door":"d%d","alarm":"forced_open","active":true}`, i+1)})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

// Two hubs with alerts on one PostgreSQL database: one leads and alone
// delivers the offline alert; the other shows it from the shared state;
// the leader evaluates the records both hubs stored; when the leader
// stops, the other takes over and delivers the resolution of the episode
// the first one fired, once.
func TestAlertsLeadOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	dsn := pg.DSN("postgres")
	h := &hotline{t: t, secret: "0123456789abcdef-hotline"}
	rcv := httptest.NewServer(h)
	defer rcv.Close()
	rules := hubalert.DefaultRules()
	rules.Offline.After = 0
	rules.Webhooks = []hubalert.Webhook{{Name: "hotline", URL: rcv.URL, Secret: h.secret, Timeout: hubalert.Duration(5 * time.Second),
		Queue: 16, BackoffMin: hubalert.Duration(100 * time.Millisecond), BackoffMax: hubalert.Duration(time.Second), MaxAttempts: 5}}
	hubs := []*running{startLeadHub(t, b.URL(), dsn, "hub-a", rules), startLeadHub(t, b.URL(), dsn, "hub-b", rules)}
	eventually(t, "one leader", func() bool { return hubs[0].srv.Leader().Leading() != hubs[1].srv.Leader().Leading() })
	lead, follow := hubs[0], hubs[1]
	if follow.srv.Leader().Leading() {
		lead, follow = follow, lead
	}

	a := startAgent(t, b.URL(), "gate-1")
	status := wire.Topics{Root: root, Agent: "gate-1"}.Status()
	publish(t, a, uplink.Message{Topic: status, QoS: 1, Retained: true,
		Payload: []byte(`{"state":"online","agent":"gate-1","boot_id":"b1","bdseq":1,"region":"460105"}`)})
	eventually(t, "both hubs saw the birth", func() bool {
		return lead.srv.Hub().Stats().Statuses >= 1 && follow.srv.Hub().Stats().Statuses >= 1
	})
	publish(t, a, uplink.Message{Topic: status, QoS: 1, Retained: true,
		Payload: []byte(`{"state":"offline","agent":"gate-1","bdseq":1,"reason":"will"}`)})
	eventually(t, "the offline alert at the hotline", func() bool { return len(h.got()) >= 1 })
	fired := h.got()[0]
	if !strings.HasSuffix(fired, ":firing") {
		t.Fatalf("hotline got %q", fired)
	}
	// The follower shows it from the shared state (reloaded every 5 s).
	eventually(t, "the follower's view", func() bool {
		f := follow.srv.Alerts().Firing()
		return len(f) == 1 && f[0].Agent == "gate-1" && f[0].Rule == hubalert.RuleOffline
	})
	if st := follow.srv.Alerts().Stats(); st.Fired != 0 || st.Commits != 0 {
		t.Fatalf("the follower evaluated: %+v", st)
	}
	if got := h.got(); len(got) != 1 {
		t.Fatalf("hotline events %q, want the firing once", got)
	}

	// Record rules over both hubs' shares: a box's forced doors, one
	// record per batch, split between the hubs by the shared
	// subscription; the leader evaluates the follower's share too.
	const doors = 16
	startAlarmAgent(t, b.URL(), "gate-2", doors)
	eventually(t, "every forced door at the hotline", func() bool { return len(h.got()) >= 1+doors })
	if st := lead.srv.Alerts().Stats(); st.Fired != 1+doors {
		t.Fatalf("the leader fired %d alerts, want %d", st.Fired, 1+doors)
	}
	if n := follow.srv.Hub().Stats().Records; n == 0 {
		t.Fatal("the follower stored none of the doors' records: the test shows nothing")
	}
	fired = h.got()[0]

	lead.stop()
	eventually(t, "the follower to lead", func() bool { return follow.srv.Leader().Leading() })
	publish(t, a, uplink.Message{Topic: status, QoS: 1, Retained: true,
		Payload: []byte(`{"state":"online","agent":"gate-1","boot_id":"b2","bdseq":2,"region":"460105"}`)})
	eventually(t, "the resolution at the hotline", func() bool { return len(h.got()) >= 2+doors })
	if got := h.got(); len(got) != 2+doors || got[1+doors] != strings.TrimSuffix(fired, "firing")+"resolved" {
		t.Fatalf("hotline events %q, want %q resolved by the new leader", got, fired)
	}
	if st := follow.srv.Alerts().Stats(); st.Fired != 0 || st.Resolved != 1 {
		t.Fatalf("the new leader's stats %+v", st)
	}
}
