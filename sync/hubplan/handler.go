package hubplan

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Paths the Handler serves.
const (
	PathPage = "/ui/coverage"
	PathCSV  = "/ui/coverage.csv"
	PathSVG  = "/ui/coverage.svg"
)

// HandlerOptions configures NewHandler.
type HandlerOptions struct {
	Dir    string // the plan directory (hubd plan import -dir); required
	Fleet  Fleet  // the hub's agents; required
	Logger *slog.Logger
	// AgentsURL and AgentURL, if set, link each row to the dashboard's
	// agents in that region and each unplanned agent to its page.
	AgentsURL func(region string) string
	AgentURL  func(id string) string
}

// Handler serves the coverage page, CSV export and SVG chart
// (firmware-specs/rollout-plan.md §5). It re-reads the plan when its file
// changes, so a "hubd plan import" shows without a restart.
type Handler struct {
	opts HandlerOptions
	log  *slog.Logger

	mu      sync.Mutex
	plan    *Plan
	modTime time.Time
	size    int64
}

// NewHandler checks that opts.Dir is a directory (a plan need not be
// imported yet: the page then says so) and returns the handler, or an
// error wrapping ErrInvalid for missing options or the stat error.
func NewHandler(opts HandlerOptions) (*Handler, error) {
	if opts.Dir == "" || opts.Fleet == nil {
		return nil, fmt.Errorf("%w: plan dir and fleet are required", ErrInvalid)
	}
	fi, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("hubplan: plan dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrInvalid, opts.Dir)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, log: log}, nil
}

// currentPlan returns the stored plan, reloading it when the file changed.
func (h *Handler) currentPlan() (*Plan, error) {
	fi, err := os.Stat(filepath.Join(h.opts.Dir, PlanFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoPlan
	}
	if err != nil {
		return nil, fmt.Errorf("hubplan: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.plan != nil && fi.ModTime().Equal(h.modTime) && fi.Size() == h.size {
		return h.plan, nil
	}
	p, err := Load(h.opts.Dir)
	if err != nil {
		return nil, err
	}
	h.plan, h.modTime, h.size = p, fi.ModTime(), fi.Size()
	return p, nil
}

// view is what one request asks for.
type view struct {
	level  Level
	parent string
}

func parseView(q url.Values) (view, error) {
	lv, err := ParseLevel(q.Get("level"))
	if err != nil {
		return view{}, err
	}
	parent := q.Get("parent")
	switch len(parent) {
	case 0, 2, 4, 6, 9:
	default:
		return view{}, fmt.Errorf("%w: parent %q: want a 2, 4, 6 or 9 digit region code", ErrInvalid, parent)
	}
	if !isCode(parent, len(parent)) || len(parent) >= int(lv) {
		return view{}, fmt.Errorf("%w: parent %q is not above level %s", ErrInvalid, parent, lv)
	}
	return view{lv, parent}, nil
}

// ServeHTTP serves GET PathPage (HTML), PathCSV and PathSVG with the query
// level=city|county|township|community (default city) and parent=CODE
// (optional prefix). It answers 400 for a bad query, 404 for another path
// or (CSV, SVG) when no plan is imported, 405 for a method other than GET
// or HEAD, and 500 when the stored plan cannot be read.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path != PathPage && r.URL.Path != PathCSV && r.URL.Path != PathSVG {
		http.NotFound(w, r)
		return
	}
	v, err := parseView(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	plan, err := h.currentPlan()
	if err != nil && !errors.Is(err, ErrNoPlan) {
		h.log.Warn("coverage: load plan", "err", err)
		http.Error(w, "cannot read the roll-out plan", http.StatusInternalServerError)
		return
	}
	if plan == nil && r.URL.Path != PathPage {
		http.Error(w, "no roll-out plan imported (hubd plan import)", http.StatusNotFound)
		return
	}
	var cv *Coverage
	var rows []Row
	if plan != nil {
		cv = Compute(plan, h.opts.Fleet.Agents())
		rows = cv.Rows(v.level, v.parent)
	}
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case PathCSV:
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="coverage-%s%s.csv"`, v.level, dashed(v.parent)))
		if err := WriteCSV(w, rows); err != nil {
			h.log.Debug("coverage csv", "err", err)
		}
	case PathSVG:
		w.Header().Set("Content-Type", "image/svg+xml")
		if err := WriteSVG(w, rows, chartTitle(cv, v)); err != nil {
			h.log.Debug("coverage svg", "err", err)
		}
	default:
		h.page(w, cv, rows, v)
	}
}

func dashed(s string) string {
	if s == "" {
		return ""
	}
	return "-" + s
}

var levelZh = map[Level]string{LevelCity: "市", LevelCounty: "县/区", LevelTownship: "乡镇/街道", LevelCommunity: "社区/村"}

func chartTitle(cv *Coverage, v view) string {
	t := fmt.Sprintf("覆盖 Coverage by %s %s", levelZh[v.level], v.level)
	if v.parent != "" {
		t += " — " + regionLabel(cv, v.parent)
	}
	return t
}

func regionLabel(cv *Coverage, code string) string {
	if cv != nil {
		if n := cv.Plan().Name(code); n != "" {
			return n + " " + code
		}
	}
	return code
}

type crumb struct{ Label, URL string }

type pageRow struct {
	Row
	Label     string
	DrillURL  string // "" for communities
	AgentsURL string // "" without HandlerOptions.AgentsURL
}

type unplannedRow struct {
	AgentRegion
	URL string // "" without HandlerOptions.AgentURL
}

type pageData struct {
	NoPlan     bool
	Title      string
	Level      string
	Crumbs     []crumb
	Levels     []crumb
	Rows       []pageRow
	Total      pageRow
	SVG        template.HTML
	CSVURL     string
	SVGURL     string
	Plan       *Plan
	Unplanned  []unplannedRow
	UnplannedN int
}

// maxUnplanned bounds the unplanned agents listed on the page.
const maxUnplanned = 200

func viewURL(path string, lv Level, parent string) string {
	q := url.Values{"level": {lv.String()}}
	if parent != "" {
		q.Set("parent", parent)
	}
	return path + "?" + q.Encode()
}

func (h *Handler) page(w http.ResponseWriter, cv *Coverage, rows []Row, v view) {
	d := pageData{Title: "覆盖 Coverage", Level: v.level.String()}
	if cv == nil {
		d.NoPlan = true
	} else {
		d.Plan = cv.Plan()
		d.Title = chartTitle(cv, v)
		d.Crumbs = append(d.Crumbs, crumb{"全部 All", viewURL(PathPage, LevelCity, "")})
		for _, n := range []int{4, 6, 9} {
			if len(v.parent) >= n {
				d.Crumbs = append(d.Crumbs, crumb{regionLabel(cv, v.parent[:n]), viewURL(PathPage, Level(n).next(), v.parent[:n])})
			}
		}
		for _, lv := range []Level{LevelCity, LevelCounty, LevelTownship, LevelCommunity} {
			if int(lv) > len(v.parent) {
				d.Levels = append(d.Levels, crumb{levelZh[lv] + " " + lv.String(), viewURL(PathPage, lv, v.parent)})
			}
		}
		for _, r := range rows {
			pr := pageRow{Row: r, Label: label(r)}
			if nx := r.Level.next(); nx != 0 {
				pr.DrillURL = viewURL(PathPage, nx, r.Code)
			}
			if h.opts.AgentsURL != nil {
				pr.AgentsURL = h.opts.AgentsURL(r.Code)
			}
			d.Rows = append(d.Rows, pr)
		}
		total := Sum(rows, "合计 Total")
		d.Total = pageRow{Row: total, Label: total.Name}
		var svg bytes.Buffer
		// A bytes.Buffer never fails.
		_ = WriteSVG(&svg, rows, d.Title)
		// WriteSVG escapes every text it writes.
		d.SVG = template.HTML(svg.String())
		d.CSVURL = viewURL(PathCSV, v.level, v.parent)
		d.SVGURL = viewURL(PathSVG, v.level, v.parent)
		for _, a := range cv.Unplanned {
			if v.parent != "" && !strings.HasPrefix(a.Region, v.parent) {
				continue
			}
			d.UnplannedN++
			if len(d.Unplanned) < maxUnplanned {
				u := unplannedRow{AgentRegion: a}
				if h.opts.AgentURL != nil {
					u.URL = h.opts.AgentURL(a.ID)
				}
				d.Unplanned = append(d.Unplanned, u)
			}
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, d); err != nil {
		h.log.Debug("coverage page", "err", err)
	}
}

var pageTmpl = template.Must(template.New("coverage").Funcs(template.FuncMap{
	"pct": pctText,
}).Parse(`<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:sans-serif;margin:1em;max-width:1200px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th:first-child,td:first-child{text-align:left}
.met{color:#2f9e44}.notmet{color:#c92a2a}
nav a{margin-right:.6em}
</style></head><body>
<h1>{{.Title}}</h1>
{{if .NoPlan}}<p>尚未导入规划 No roll-out plan imported (hubd plan import).</p>{{else}}
<nav>{{range $i, $c := .Crumbs}}{{if $i}} › {{end}}<a href="{{$c.URL}}">{{$c.Label}}</a>{{end}}</nav>
<nav>层级 Level: {{range .Levels}}<a href="{{.URL}}">{{.Label}}</a>{{end}}</nav>
<p>规划 Plan: {{.Plan.Source}} ({{len .Plan.Communities}} 社区/村 communities), 导入 imported {{.Plan.Imported.Format "2006-01-02 15:04"}} ·
<a href="{{.CSVURL}}">导出 CSV export</a> · <a href="{{.SVGURL}}">图 SVG chart</a></p>
<p>目标 Targets: 城市社区全覆盖 every urban community covered; 农村至少一半 at least half of rural ones.</p>
<table>
<thead><tr><th>地区 Region</th><th>社区/村 Communities</th>
<th>城市已覆盖 Urban covered</th><th>农村已覆盖 Rural covered</th><th>达标 Target met</th>
<th>计划 Planned (kiosk/gate)</th><th>已部署 Provisioned (kiosk/gate)</th><th>在线 Online (kiosk/gate)</th></tr></thead>
<tbody>
{{range .Rows}}{{template "row" .}}{{end}}
</tbody>
<tfoot>{{template "row" .Total}}</tfoot>
</table>
<div class="chart">{{.SVG}}</div>
{{if .UnplannedN}}<h2>规划外 Unplanned agents ({{.UnplannedN}})</h2>
<table><thead><tr><th>终端 Agent</th><th>地区代码 Region</th><th>类型 Kind</th><th>状态 Status</th></tr></thead><tbody>
{{range .Unplanned}}<tr><td>{{if .URL}}<a href="{{.URL}}">{{.ID}}</a>{{else}}{{.ID}}{{end}}</td><td>{{if .Region}}{{.Region}}{{else}}—{{end}}</td><td>{{.Kind}}</td><td>{{if .Online}}在线 Online{{else}}离线 Offline{{end}}</td></tr>
{{end}}</tbody></table>{{end}}
{{end}}
</body></html>
{{define "row"}}<tr><td>{{if .DrillURL}}<a href="{{.DrillURL}}">{{.Label}}</a>{{else}}{{.Label}}{{end}}{{if .AgentsURL}} · <a href="{{.AgentsURL}}">终端 Agents</a>{{end}}</td>
<td>{{.Communities}}</td>
<td>{{.UrbanCovered}}/{{.Urban}} ({{pct .UrbanPct}}%)</td>
<td>{{.RuralCovered}}/{{.Rural}} ({{pct .RuralPct}}%)</td>
<td>{{if .TargetMet}}<span class="met">✔ 达标 Met</span>{{else}}<span class="notmet">✘ 未达标 Not met</span>{{end}}</td>
<td>{{.Planned}} ({{.PlannedKiosks}}/{{.PlannedGates}})</td>
<td>{{.Provisioned}} ({{.ProvisionedKiosks}}/{{.ProvisionedGates}})</td>
<td>{{.Online}} ({{.OnlineKiosks}}/{{.OnlineGates}})</td></tr>
{{end}}`))
