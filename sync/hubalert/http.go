package hubalert

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"time"
)

// Page is the JSON answer of GET /api/alerts.
type Page struct {
	Firing  []Alert `json:"firing"`  // sorted by key, never null
	History []Alert `json:"history"` // newest first, never null
	Stats   Stats   `json:"stats"`
}

// Handler serves
//
//	GET /api/alerts   Page (?limit=N bounds the history, default 100)
//	GET /ui/alerts    the same as an HTML page, Chinese and English labels
//
// Alerts carry no personal data (hub-alerts.md §3), so nothing is masked.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/alerts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// The client may have gone away; there is nobody to tell.
		_ = json.NewEncoder(w).Encode(s.page(r))
	})
	mux.HandleFunc("GET /ui/alerts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = pageTmpl.Execute(w, s.page(r)) // as above
	})
	return mux
}

func (s *Service) page(r *http.Request) Page {
	limit := 100
	if v, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && v > 0 {
		limit = min(v, 10000)
	}
	p := Page{Firing: s.Firing(), History: s.History(limit), Stats: s.Stats()}
	if p.Firing == nil {
		p.Firing = []Alert{}
	}
	return p
}

var pageTmpl = template.Must(template.New("alerts").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}).Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>告警 Alerts — KioskEdge hub</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:2em;font-size:14px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.critical{color:#b00020;font-weight:bold}.major{color:#c60}.minor{color:#555}
.firing{color:#b00020}.resolved{color:#2e7d32}
small{color:#666}
</style></head><body>
<h1>告警 Alerts</h1>
<p><small>正在告警 Firing: {{.Stats.Firing}} · 已触发 Fired: {{.Stats.Fired}} · 已恢复 Resolved: {{.Stats.Resolved}} · 丢弃 Dropped: {{.Stats.Dropped}}
{{range .Stats.Webhooks}} · Webhook {{.Name}}: 已送达 delivered {{.Delivered}}, 失败 failed {{.Failures}}, 排队 queued {{.Queued}}, 放弃 gave up {{.GaveUp}}{{end}}</small></p>
<h2>正在告警 Firing</h2>
<table><tr><th>级别 Severity</th><th>规则 Rule</th><th>终端 Agent</th><th>对象 Subject</th><th>区域 Region</th><th>站点 Site</th><th>开始 Started</th><th>摘要 Summary</th></tr>
{{range .Firing}}<tr><td class="{{.Severity}}">{{.Severity}}</td><td>{{.Rule}}</td><td>{{.Agent}}</td><td>{{.Subject}}</td><td>{{.Labels.Region}}</td><td>{{.Labels.Site}}</td><td>{{ts .Started}}</td><td>{{.Summary.ZH}}<br><small>{{.Summary.EN}}</small></td></tr>
{{else}}<tr><td colspan="8">无 None</td></tr>{{end}}</table>
<h2>历史 History</h2>
<table><tr><th>状态 State</th><th>级别 Severity</th><th>规则 Rule</th><th>终端 Agent</th><th>对象 Subject</th><th>开始 Started</th><th>恢复 Resolved</th><th>摘要 Summary</th></tr>
{{range .History}}<tr><td class="{{.State}}">{{if eq .State "firing"}}告警 firing{{else}}恢复 resolved{{end}}</td><td class="{{.Severity}}">{{.Severity}}</td><td>{{.Rule}}</td><td>{{.Agent}}</td><td>{{.Subject}}</td><td>{{ts .Started}}</td><td>{{ts .Resolved}}</td><td>{{.Summary.ZH}}<br><small>{{.Summary.EN}}</small></td></tr>
{{else}}<tr><td colspan="8">无 None</td></tr>{{end}}</table>
</body></html>
`))
