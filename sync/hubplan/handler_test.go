package hubplan

import (
	"encoding/csv"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeFleet struct {
	mu sync.Mutex
	as []AgentRegion
}

func (f *fakeFleet) Agents() []AgentRegion {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AgentRegion(nil), f.as...)
}

func get(t *testing.T, srv *httptest.Server, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestHandler(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plan")
	if _, err := NewHandler(HandlerOptions{Dir: dir, Fleet: &fakeFleet{}}); err == nil {
		t.Fatal("NewHandler accepted a missing dir")
	}
	if _, err := NewHandler(HandlerOptions{Dir: t.TempDir()}); err == nil {
		t.Fatal("NewHandler accepted no fleet")
	}
	p := readPlan(t)
	p.Imported = time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	empty := t.TempDir()
	fleet := &fakeFleet{as: testAgents()}
	h, err := NewHandler(HandlerOptions{Dir: empty, Fleet: fleet,
		AgentsURL: func(region string) string { return "/ui/?region=" + region },
		AgentURL:  func(id string) string { return "/ui/agents/" + id }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, path := range []string{PathPage, PathCSV, PathSVG} {
		mux.Handle(path, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// No plan yet: the page says so, the exports are 404.
	if code, _, body := get(t, srv, PathPage); code != 200 || !strings.Contains(body, "No roll-out plan imported") {
		t.Fatalf("page without a plan: %d %s", code, body)
	}
	if code, _, _ := get(t, srv, PathCSV); code != 404 {
		t.Fatalf("csv without a plan: %d", code)
	}
	if err := Save(empty, p); err != nil {
		t.Fatal(err)
	}

	code, hdr, body := get(t, srv, PathPage)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %v", code, hdr)
	}
	for _, want := range []string{
		"北京市市辖区 1101", "已部署 Provisioned", "在线 Online", "计划 Planned",
		`href="/ui/coverage?level=county&amp;parent=1101"`, // drill down
		`href="/ui/coverage.csv?level=city"`,
		"<svg", `class="row" data-code="1201"`,
		"规划外 Unplanned agents (3)", "x1", "110105101299",
		"✘ 未达标 Not met",
		`<a href="/ui/?region=1101">终端 Agents</a>`, `<a href="/ui/agents/x1">x1</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("city page lacks %q", want)
		}
	}

	_, _, body = get(t, srv, PathPage+"?level=township&parent=110101")
	for _, want := range []string{"东华门街道 110101001", "✔ 达标 Met", `parent=110101001"`, "东城区 110101"} {
		if !strings.Contains(body, want) {
			t.Errorf("township page lacks %q", want)
		}
	}
	if strings.Contains(body, "Unplanned agents") {
		t.Error("township page under 110101 lists agents unplanned elsewhere")
	}

	code, hdr, body = get(t, srv, PathCSV+"?level=community&parent=110105101")
	if code != 200 || hdr.Get("Content-Type") != "text/csv; charset=utf-8" || !strings.Contains(hdr.Get("Content-Disposition"), "coverage-community-110105101.csv") {
		t.Fatalf("csv: %d %v", code, hdr)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 5 || recs[1][1] != "110105101201" {
		t.Fatalf("csv records %q, %v", recs, err)
	}

	code, hdr, body = get(t, srv, PathSVG+"?level=county&parent=1101")
	if code != 200 || hdr.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("svg: %d %v", code, hdr)
	}
	if codes, _ := svgGroups(t, strings.NewReader(body)); strings.Join(codes, ",") != "110101,110105" {
		t.Fatalf("svg groups %v", codes)
	}

	// The fleet is read per request: a new agent shows at once.
	fleet.mu.Lock()
	fleet.as = append(fleet.as, AgentRegion{ID: "h1", Region: "120101001001", Kind: Kiosk, Online: true})
	fleet.mu.Unlock()
	_, _, body = get(t, srv, PathCSV)
	recs, err = csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 3 || recs[2][1] != "1201" || recs[2][10] != "true" {
		t.Fatalf("csv after h1: %q, %v", recs, err)
	}

	// A new import replaces the plan without a restart.
	p.Communities = p.Communities[:1]
	if err := Save(empty, p); err != nil {
		t.Fatal(err)
	}
	_, _, body = get(t, srv, PathCSV+"?level=community")
	if recs, err := csv.NewReader(strings.NewReader(body)).ReadAll(); err != nil || len(recs) != 2 {
		t.Fatalf("csv after re-import: %q, %v", recs, err)
	}

	for _, bad := range []string{"?level=province", "?level=city&parent=1101", "?parent=11010", "?level=county&parent=11x1"} {
		if code, _, _ := get(t, srv, PathPage+bad); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	resp, err := srv.Client().Post(srv.URL+PathPage, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}
