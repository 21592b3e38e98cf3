package hubui

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/hubfleet"
	"github.com/kioskedge/kioskedge/sync/hubstore"
)

// ErrOptions is returned by New for missing options.
var ErrOptions = errors.New("hubui: invalid options")

// Records reads an agent's stored records with sealed fields masked;
// *hub.Hub is one.
type Records interface {
	Records(agent string, q hub.RecordsQuery) (hub.RecordsPage, error)
}

// States reads an agent's stored state; *hubstore.Store is one.
type States interface {
	AgentState(id string) (hubstore.AgentState, bool)
}

// Options configures New.
type Options struct {
	Fleet   *hubfleet.Fleet // required
	Records Records         // required
	States  States          // required
	// Now is the clock for "ago" columns; nil means time.Now.
	Now func() time.Time
	// RecentRecords is how many records of each section the agent page
	// shows; default 20. RecentWindow is how many of the agent's latest
	// records are searched for them; default 1000 (hub.MaxRecordsLimit).
	RecentRecords int
	RecentWindow  int
	// Heartbeat is the interval of SSE keep-alive comments; default 20 s.
	Heartbeat time.Duration
	// Links are further pages shown in every page's header after the
	// agents table (the coverage and alerts views when hubd serves them).
	Links  []Link
	Logger *slog.Logger // nil discards
}

// Link is a header link to another page of the hub.
type Link struct {
	Href  string // a path on the hub, e.g. "/ui/alerts"
	Label string // e.g. "告警 Alerts"
}

// UI serves the dashboard. Create it with New and mount Handler under /ui/.
type UI struct {
	opts Options
	log  *slog.Logger
	tpl  *template.Template

	done     chan struct{} // closed by Shutdown
	shutOnce sync.Once
}

//go:embed assets templates
var files embed.FS

// New checks opts and parses the templates. It returns ErrOptions for a
// missing fleet, records or states.
func New(opts Options) (*UI, error) {
	if opts.Fleet == nil || opts.Records == nil || opts.States == nil {
		return nil, fmt.Errorf("%w: fleet, records and states are required", ErrOptions)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RecentRecords <= 0 {
		opts.RecentRecords = 20
	}
	if opts.RecentWindow <= 0 {
		opts.RecentWindow = hub.MaxRecordsLimit
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 20 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	u := &UI{opts: opts, log: log, done: make(chan struct{})}
	tpl, err := template.New("").Funcs(template.FuncMap{
		"ago":      u.ago,
		"since":    u.since,
		"dur":      fmtDuration,
		"offset":   fmtOffset,
		"tm":       fmtTime,
		"statusZh": statusZh,
		"links":    func() []Link { return opts.Links },
	}).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("hubui: templates: %w", err)
	}
	u.tpl = tpl
	return u, nil
}

// Handler returns the dashboard's routes (see the package doc), all under
// /ui/. Unknown paths get 404 and other methods 405.
func (u *UI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/{$}", u.serveAgents)
	mux.HandleFunc("GET /ui/agents/{id}", u.serveAgent)
	mux.HandleFunc("GET /ui/events", u.serveEvents)
	assets, err := fs.Sub(files, "assets")
	if err != nil {
		panic(err) // the embedded directory exists: it is compiled in
	}
	mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/assets/", http.FileServerFS(assets)))
	return mux
}

// Shutdown ends every event stream and makes new ones end at once, so an
// http.Server's Shutdown need not wait for open dashboards (register it
// with RegisterOnShutdown). Pages are still served. It is idempotent.
func (u *UI) Shutdown() { u.shutOnce.Do(func() { close(u.done) }) }

// Redirect sends / to /ui/, for mounting at "GET /{$}".
func Redirect() http.Handler { return http.RedirectHandler("/ui/", http.StatusFound) }

// agentsPage is the data of agents.html.
type agentsPage struct {
	Q      hubfleet.Query
	Page   hubfleet.Page
	PageNo int // 1-based
	Counts hubfleet.Counts
	Prev   string // URLs, "" when none
	Next   string
	Sorts  map[string]string // column sort key → URL sorting by it
	Took   time.Duration
	IDs    string // comma-separated ids of the rows shown, for the SSE URL
}

// parseQuery reads the agents table's query from the URL; bad numbers
// fall back to the defaults.
func parseQuery(v url.Values) hubfleet.Query {
	q := hubfleet.Query{
		Region: strings.TrimSpace(v.Get("region")),
		Status: v.Get("status"),
		Fault:  v.Get("fault") == "1",
		Text:   strings.TrimSpace(v.Get("q")),
		Sort:   v.Get("sort"),
		Desc:   v.Get("desc") == "1",
	}
	if q.Status != hubfleet.StatusOnline && q.Status != hubfleet.StatusOffline {
		q.Status = hubfleet.StatusAny
	}
	if !slices.Contains(hubfleet.SortKeys, q.Sort) {
		q.Sort = hubfleet.SortID
	}
	if n, err := strconv.Atoi(v.Get("page")); err == nil && n > 1 {
		q.Page = n - 1
	}
	if n, err := strconv.Atoi(v.Get("per")); err == nil && n > 0 {
		q.PerPage = min(n, hubfleet.MaxPerPage)
	}
	return q
}

// queryURL is the /ui/ URL of q.
func queryURL(q hubfleet.Query) string {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("region", q.Region)
	set("status", q.Status)
	if q.Fault {
		v.Set("fault", "1")
	}
	set("q", q.Text)
	if q.Sort != hubfleet.SortID {
		v.Set("sort", q.Sort)
	}
	if q.Desc {
		v.Set("desc", "1")
	}
	if q.Page > 0 {
		v.Set("page", strconv.Itoa(q.Page+1))
	}
	if q.PerPage > 0 && q.PerPage != hubfleet.DefaultPerPage {
		v.Set("per", strconv.Itoa(q.PerPage))
	}
	if len(v) == 0 {
		return "/ui/"
	}
	return "/ui/?" + v.Encode()
}

func (u *UI) serveAgents(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := parseQuery(r.URL.Query())
	p := agentsPage{Q: q, Page: u.opts.Fleet.List(q), Counts: u.opts.Fleet.Counts(), Sorts: map[string]string{}}
	p.PageNo = p.Page.Page + 1
	if p.Page.Page > 0 {
		prev := q
		prev.Page = min(p.Page.Page-1, p.Page.Pages-1)
		p.Prev = queryURL(prev)
	}
	if p.Page.Page+1 < p.Page.Pages {
		next := q
		next.Page++
		p.Next = queryURL(next)
	}
	for _, k := range hubfleet.SortKeys {
		s := q
		s.Page, s.Sort, s.Desc = 0, k, k == q.Sort && !q.Desc
		p.Sorts[k] = queryURL(s)
	}
	ids := make([]string, len(p.Page.Rows))
	for i, row := range p.Page.Rows {
		ids[i] = row.ID
	}
	p.IDs = strings.Join(ids, ",")
	p.Took = time.Since(start)
	u.render(w, "agents.html", p)
}

// agentPage is the data of agent.html.
type agentPage struct {
	Live   liveAgent    // its Row heads the page
	Alarms []recordLine // door.alarm and device.* records, newest first
	Access []recordLine // access.decision and door.event records, newest first
	// RecordsErr says why records could not be read.
	RecordsErr string
}

func (u *UI) serveAgent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	row, ok := u.opts.Fleet.Row(id)
	st, ok2 := u.opts.States.AgentState(id)
	if !ok || !ok2 {
		http.Error(w, "unknown agent 未知设备", http.StatusNotFound)
		return
	}
	p := agentPage{Live: live(row, st)}
	p.Alarms, p.Access, p.RecordsErr = u.recent(id, st.Highest)
	u.render(w, "agent.html", p)
}

func (u *UI) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := u.tpl.ExecuteTemplate(&buf, name, data); err != nil {
		u.log.Error("dashboard template", "template", name, "err", err)
		http.Error(w, "page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The client may have gone away; there is nobody to tell.
	_, _ = w.Write(buf.Bytes())
}

// event is one SSE message's data.
type event struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
}

// serveEvents streams changed rows (and, with ?agent=, that agent's live
// part) until the client goes away.
func (u *UI) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	var rows map[string]bool // nil: every row
	if s := r.URL.Query().Get("rows"); s != "" {
		rows = map[string]bool{}
		for id := range strings.SplitSeq(s, ",") {
			rows[id] = true
		}
	}
	agent := r.URL.Query().Get("agent")
	sub := u.opts.Fleet.Subscribe()
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A comment first, so the client knows the stream is open (and tests
	// know the subscription is in place).
	if _, err := io.WriteString(w, ": open\n\n"); err != nil {
		return
	}
	fl.Flush()
	beat := time.NewTicker(u.opts.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-u.done:
			return
		case <-beat.C:
			if _, err := io.WriteString(w, ": beat\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-sub.Ready():
			for _, id := range sub.Take() {
				if err := u.sendChange(w, id, rows, agent); err != nil {
					return
				}
			}
			fl.Flush()
		}
	}
}

func (u *UI) sendChange(w io.Writer, id string, rows map[string]bool, agent string) error {
	row, ok := u.opts.Fleet.Row(id)
	if !ok {
		return nil
	}
	if agent == "" && (rows == nil || rows[id]) {
		if err := u.sendEvent(w, "row", id, "row", row); err != nil {
			return err
		}
	}
	if agent != "" && agent == id {
		st, ok := u.opts.States.AgentState(id)
		if !ok {
			return nil
		}
		if err := u.sendEvent(w, "agent", id, "live", live(row, st)); err != nil {
			return err
		}
	}
	return nil
}

func (u *UI) sendEvent(w io.Writer, name, id, tpl string, data any) error {
	var buf bytes.Buffer
	if err := u.tpl.ExecuteTemplate(&buf, tpl, data); err != nil {
		u.log.Error("dashboard template", "template", tpl, "err", err)
		return nil
	}
	b, err := json.Marshal(event{ID: id, HTML: buf.String()})
	if err != nil {
		return nil // a struct of two strings always marshals
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
	return err
}

func (u *UI) ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return fmtDuration(u.opts.Now().Sub(t)) + " ago 前"
}

func (u *UI) since(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmtTime(t) + " (" + u.ago(t) + ")"
}

// fmtDuration is a short human duration: 45s, 12m, 3h05m, 2d04h.
func fmtDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		s = fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		s = fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
	if neg {
		return "-" + s
	}
	return s
}

// fmtOffset is a clock offset as the agent measured it (the hub's clock
// ahead of the agent's): "+0.12 s", "-6.3 s", "+2m05s" beyond a minute.
func fmtOffset(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%s%.2f s", sign, d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%s%.1f s", sign, d.Seconds())
	}
	return sign + fmtDuration(d)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Format("2006-01-02 15:04:05 Z07:00")
}

func statusZh(r hubfleet.Row) string {
	switch {
	case !r.HasStatus:
		return "未知 Unknown"
	case r.Online:
		return "在线 Online"
	default:
		return "离线 Offline"
	}
}
