package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kioskedge/kioskedge/cmd/internal/admin"
	"github.com/kioskedge/kioskedge/cmd/internal/commission"
	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

// With kioskd running, selftest takes the devices' state from its status,
// touches no port, and sends the report through it.
func TestSelftestThroughRunningDaemon(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	hub := hubtest.Start(t, b.URL(), hubtest.Options{})
	k := newKiosk(t, b.URL(), hub.Root())
	cfgText, err := os.ReadFile(k.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// kioskd listens on a free port and writes it to admin.addr.
	cfgText = []byte(strings.Replace(string(cfgText), `listen = "127.0.0.1:1"`, `listen = "127.0.0.1:0"`, 1))
	if err := os.WriteFile(k.cfgPath, cfgText, 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(k.dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	const token = "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(admin.TokenPath(dataDir), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		recs []wire.Record
	)
	srv, err := admin.New(admin.Options{Listen: "127.0.0.1:0", Token: token, Metrics: func(*promtext.Writer) {},
		Status: func() admin.StatusResponse {
			return admin.StatusResponse{Health: wire.Health{Agent: "kiosk-7",
				Outbox: wire.OutboxHealth{Depth: 3, OldestUnsentS: 42, AckedThrough: 100},
				Devices: []wire.DeviceHealth{{Name: "idcard", Connected: true}, {Name: "sscard", Connected: true},
					{Name: "scanner", Connected: true}, {Name: "printer", Connected: false, Detail: "not connected"}}}}
		},
		Append: func(_ context.Context, r wire.Record) (uint64, error) {
			mu.Lock()
			defer mu.Unlock()
			recs = append(recs, r)
			return uint64(100 + len(recs)), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.WriteAddrFile(dataDir, srv.Addr().String()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	code, res, out := selftest(t, k.cfgPath)
	cs := checks(res.Report)
	if code != exitFailed || res.Report.Summary.Failed != 1 {
		t.Fatalf("code %d summary %+v\n%s", code, res.Report.Summary, out)
	}
	if c := cs["device:printer"]; c.OK || !strings.Contains(c.Reason, "not connected") || !strings.Contains(c.Detail, "from kioskd") {
		t.Errorf("printer from kioskd's health: %+v", c)
	}
	if c := cs["outbox"]; !c.OK || !strings.Contains(c.Detail, "3 records waiting") || !strings.Contains(c.Detail, "from kioskd") {
		t.Errorf("outbox from kioskd: %+v", c)
	}
	if !strings.Contains(res.Sent, "sent through kioskd as record 101") || !strings.Contains(res.Printed, "kioskd holds the printer") {
		t.Errorf("sent %q printed %q", res.Sent, res.Printed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recs) != 1 || recs[0].Kind != commission.RecordKind || recs[0].Class != wire.ClassCritical {
		t.Fatalf("kioskd got %+v", recs)
	}
	if k.printer.Queries() != 0 {
		t.Errorf("selftest queried the printer kioskd holds %d times", k.printer.Queries())
	}
}
