package hubplan_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubplan"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

// Births with regions cross a real broker into a hub; the coverage handler
// over the hub's store counts them by community, kind and online state.
func TestCoverageFromHubBirths(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	h := hubtest.Start(t, b.URL(), hubtest.Options{})

	f, err := os.Open("testdata/plan.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	plan, err := hubplan.ParseCSV(f, "plan.csv")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := hubplan.Save(dir, plan); err != nil {
		t.Fatal(err)
	}
	cov, err := hubplan.NewHandler(hubplan.HandlerOptions{Dir: dir, Fleet: hubplan.FromStore(h.Server().Store())})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cov)
	defer srv.Close()

	s, err := uplink.NewSession(uplink.SessionOptions{Broker: b.URL(), ClientID: "plan-test", AllowPlaintext: true, Backoff: hubtest.DefaultBackoff})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	status := func(id, state, region string, kinds ...string) {
		t.Helper()
		st := wire.Status{State: state, Agent: id, BootID: "b1", BdSeq: 1, Time: time.Unix(1_700_000_000, 0), Region: region}
		if state == wire.StateOffline {
			st.Reason = "will"
		}
		for _, k := range kinds {
			st.Inventory = append(st.Inventory, wire.Device{Name: k, Kind: k})
		}
		raw, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		pctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		topic := wire.Topics{Root: h.Root(), Agent: id}.Status()
		for {
			err := s.Publish(pctx, uplink.Message{Topic: topic, QoS: 1, Retained: true, Payload: raw})
			if err == nil {
				return
			}
			if !errors.Is(err, uplink.ErrNotConnected) || pctx.Err() != nil {
				t.Fatalf("publish: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	status("k-a", wire.StateOnline, "110101001001", "idcard", "escpos")
	status("g-a", wire.StateOnline, "110101001001", "wiegand")
	status("k-b", wire.StateOnline, "110101001002", "idcard")
	status("k-b", wire.StateOffline, "", "") // its Will: the birth stays, it goes offline
	status("k-x", wire.StateOnline, "330106001001", "idcard")

	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := h.Server().Hub().Wait(wctx, func() bool {
		kb := h.View(t, "k-b")
		return h.View(t, "k-a").Online && h.View(t, "g-a").Online && h.View(t, "k-x").Online && kb.Known && !kb.Online
	}); err != nil {
		t.Fatalf("the hub never saw the births: %v", err)
	}

	get := func(path string) string {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return string(body)
	}
	recs, err := csv.NewReader(strings.NewReader(get(hubplan.PathCSV + "?level=community&parent=110101001"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, h := range recs[0] {
		idx[h] = i
	}
	want := map[string]map[string]string{
		"110101001001": {"provisioned_kiosks": "1", "provisioned_gates": "1", "online_kiosks": "1", "online_gates": "1", "urban_covered": "1"},
		"110101001002": {"provisioned_kiosks": "1", "provisioned_gates": "0", "online_kiosks": "0", "online_gates": "0", "urban_covered": "1"},
	}
	if len(recs) != 3 {
		t.Fatalf("csv %q", recs)
	}
	for _, rec := range recs[1:] {
		for col, v := range want[rec[idx["code"]]] {
			if rec[idx[col]] != v {
				t.Errorf("%s %s = %s, want %s", rec[idx["code"]], col, rec[idx[col]], v)
			}
		}
	}
	page := get(hubplan.PathPage)
	if !strings.Contains(page, "规划外 Unplanned agents (1)") || !strings.Contains(page, "k-x") || !strings.Contains(page, "330106001001") {
		t.Errorf("page does not list k-x as unplanned")
	}
}
