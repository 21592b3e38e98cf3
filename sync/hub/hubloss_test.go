package hub

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// A hub on a fresh store meets an agent whose earlier hub acked through
// 5000: its batches from 5001 on are acked once its birth arrives, in
// either order, and the API reports the range as acked before.
func TestFreshStoreAcksAfterBirthAckedThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	f := start(t, path, nil)
	status := func(bd, acked uint64) {
		f.tr.Deliver(t, root+"/v1/a/status",
			fmt.Appendf(nil, `{"state":"online","agent":"a","bdseq":%d,"acked_through":%d}`, bd, acked))
	}
	f.events("a", encode(t, "a", 5001, 5500))
	f.waitHub(func() bool { return f.hub.Stats().Batches == 1 })
	if st := f.hub.Stats(); st.Unackable != 1 || len(f.tr.acks(t)) != 0 {
		t.Fatalf("before the birth: stats %+v, acks %v", st, f.tr.acks(t))
	}
	status(2, 5000)
	f.waitHub(func() bool { return f.hub.Stats().Statuses == 1 })
	f.events("a", encode(t, "a", 5501, 6000))
	f.waitHub(func() bool { return f.hub.Stats().Batches == 2 })
	if acks := f.tr.acks(t); !slices.Equal(acks, []wire.Ack{{Agent: "a", Through: 5500}, {Agent: "a", Through: 6000}}) {
		t.Fatalf("acks %v", acks)
	}
	r := f.received("a")
	if r.Count != 1000 || r.HighestContiguous != 6000 || r.Highest != 6000 || len(r.Missing) != 0 || r.AckedBefore != 5000 {
		t.Fatalf("received %+v", r)
	}
	if st := f.hub.Stats(); st.AckedBefore != 5000 {
		t.Fatalf("stats %+v", st)
	}

	// A lower acked_through, and a stale birth, change nothing.
	status(3, 4000)
	status(1, 9000)
	f.waitHub(func() bool { return f.hub.Stats().Statuses == 3 })
	if st := f.hub.Stats(); st.AckedBefore != 5000 || st.StaleStatuses != 1 || len(f.tr.acks(t)) != 2 {
		t.Fatalf("stats %+v, acks %v", st, f.tr.acks(t))
	}

	srv := httptest.NewServer(f.hub.Handler())
	defer srv.Close()
	for _, path := range []string{"/api/agents/a/received", "/api/stats"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"acked_before":5000`) {
			t.Fatalf("GET %s: %s", path, body)
		}
	}
	f.stop()

	// The marking is durable: a restarted hub re-acks a resend at once.
	g := start(t, path, nil)
	g.events("a", encode(t, "a", 5001, 5100))
	g.waitHub(func() bool { return g.hub.Stats().Batches == 1 })
	if acks := g.tr.acks(t); !slices.Equal(acks, []wire.Ack{{Agent: "a", Through: 6000}}) {
		t.Fatalf("acks after restart %v", acks)
	}
	if r := g.received("a"); r.AckedBefore != 5000 || r.HighestContiguous != 6000 || r.DuplicatesDropped != 100 {
		t.Fatalf("after restart %+v", r)
	}
}
