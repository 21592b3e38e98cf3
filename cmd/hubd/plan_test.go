package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubplan"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

const testPlanCSV = `region_code,community,area,planned_kiosks,planned_gates,county_name
110101001001,东华门社区,urban,1,0,东城区
110101001002,景山社区,urban,1,1,东城区
110105101201,上辛堡村,rural,1,0,朝阳区
`

func writePlanFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanImportAndShow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plan")
	good := writePlanFile(t, "plan.csv", testPlanCSV)
	var out bytes.Buffer
	if err := run([]string{"plan", "import", "-csv", good, "-dir", dir}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "stored 3 communities (2 urban, 1 rural; 3 kiosks, 1 gates planned)") {
		t.Fatalf("import said %q", out.String())
	}
	p, err := hubplan.Load(dir)
	if err != nil || len(p.Communities) != 3 || p.Names["110101"] != "东城区" || p.Imported.IsZero() {
		t.Fatalf("stored plan %+v, %v", p, err)
	}
	out.Reset()
	if err := run([]string{"plan", "show", "-dir", dir}, &out); err != nil || !strings.Contains(out.String(), "3 communities") {
		t.Fatalf("show: %v %q", err, out.String())
	}

	// A bad file is refused with its location and the stored plan stays.
	bad := writePlanFile(t, "bad.csv", testPlanCSV+"110105101202,下辛堡村,village,1,0,朝阳区\n")
	err = run([]string{"plan", "import", "-csv", bad, "-dir", dir}, io.Discard)
	if !errors.Is(err, hubplan.ErrInvalid) || !strings.Contains(err.Error(), bad+":5:3:") {
		t.Fatalf("bad import: %v", err)
	}
	if p2, err := hubplan.Load(dir); err != nil || len(p2.Communities) != 3 {
		t.Fatalf("plan after a refused import: %+v, %v", p2, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan"}, "subcommand"},
		{[]string{"plan", "frob"}, "unknown subcommand"},
		{[]string{"plan", "import", "-dir", dir}, "-csv and -dir are required"},
		{[]string{"plan", "import", "-csv", good}, "-csv and -dir are required"},
		{[]string{"plan", "import", "-csv", good, "-dir", dir, "x"}, "unexpected arguments"},
		{[]string{"plan", "import", "-csv", filepath.Join(dir, "nosuch.csv"), "-dir", dir}, "no such file"},
		{[]string{"plan", "show", "-dir", t.TempDir()}, "no plan imported"},
		{[]string{"plan", "show"}, "-dir is required"},
	} {
		if err := run(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// hubd serve -plan-dir serves /ui/coverage* from the imported plan and the
// births it receives.
func TestServeCoverage(t *testing.T) {
	const root = "kioskedge/plan"
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	dir := t.TempDir()
	planDir := filepath.Join(dir, "plan")
	if err := run([]string{"plan", "import", "-csv", writePlanFile(t, "plan.csv", testPlanCSV), "-dir", planDir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	addr, _, _ := startServe(t, []string{"-broker", b.URL(), "-plaintext", "-root", root, "-db", filepath.Join(dir, "hub.db"),
		"-http", "127.0.0.1:0", "-plan-dir", planDir})
	publish := startPublisher(t, b.URL(), "k1")
	birth, err := json.Marshal(wire.Status{State: wire.StateOnline, Agent: "k1", BootID: "b1", BdSeq: 1, Time: time.Now(), Region: "110101001001",
		Inventory: []wire.Device{{Name: "reader", Kind: "idcard"}}})
	if err != nil {
		t.Fatal(err)
	}
	publish(uplink.Message{Topic: wire.Topics{Root: root, Agent: "k1"}.Status(), QoS: 1, Retained: true, Payload: birth})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	var recs [][]string
	eventually(t, "coverage counts k1", func() bool {
		code, body := get(hubplan.PathCSV + "?level=county")
		if code != 200 {
			return false
		}
		recs, err = csv.NewReader(strings.NewReader(body)).ReadAll()
		// columns: code 1, name 2, provisioned_kiosks 13, online_kiosks 15
		return err == nil && len(recs) == 3 && recs[1][13] == "1" && recs[1][15] == "1"
	})
	if recs[1][1] != "110101" || recs[1][2] != "东城区" || recs[2][1] != "110105" || recs[2][13] != "0" {
		t.Fatalf("coverage csv %q", recs)
	}
	if code, body := get(hubplan.PathPage + "?level=county"); code != 200 || !strings.Contains(body, "东城区 110101") ||
		!strings.Contains(body, `href="/ui/?region=110101"`) {
		t.Fatalf("page: %d", code)
	}
	if code, body := get(hubplan.PathSVG); code != 200 || !strings.HasPrefix(body, "<svg") {
		t.Fatalf("svg: %d", code)
	}
}
