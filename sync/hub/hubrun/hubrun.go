package hubrun

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/hubal"
	"github.com/kioskedge/kioskedge/sync/hubalert"
	"github.com/kioskedge/kioskedge/sync/hubca"
	"github.com/kioskedge/kioskedge/sync/hubfleet"
	"github.com/kioskedge/kioskedge/sync/hubpg"
	"github.com/kioskedge/kioskedge/sync/hubplan"
	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/hubui"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// ErrConfig is returned by New for an invalid Config.
var ErrConfig = errors.New("hubrun: invalid config")

// Config describes one hub process.
type Config struct {
	Broker   string // broker URL, e.g. "ssl://hub:8883" or (plaintext) "tcp://127.0.0.1:1883"
	ClientID string // MQTT client id; default "kioskedge-hubd"
	// TLS names the CA and client certificate for ssl:// brokers.
	TLS *uplink.TLSFiles
	// AllowPlaintext permits tcp:// brokers (lab and demo only).
	AllowPlaintext bool
	Backoff        uplink.Backoff // reconnect back-off; zero fields take uplink's defaults

	Root   string // topic root; required
	DBPath string // hubstore (bbolt) file; required unless DB is set
	// DB, if set, names the store instead of DBPath: a postgres:// or
	// postgresql:// URL opens the PostgreSQL store (sync/hubpg), which
	// several hubs with the same ShareGroup can share; anything else is a
	// hubstore file path. Setting both DB and a different DBPath is an
	// error.
	DB         string
	ShareGroup string // "" subscribes directly; otherwise $share/<group>/…

	// HTTPAddr is where the JSON API listens, e.g. "127.0.0.1:8740" or
	// "127.0.0.1:0" for a free port; "" serves no HTTP.
	HTTPAddr string

	Limits wire.Limits // batch decoding limits; zero fields take wire's defaults
	Logger *slog.Logger

	// SealKey, Mask and RevealPersonalData are passed to hub.Options: the
	// records API opens sealed fields with SealKey (nil: they stay sealed)
	// and shows them masked unless RevealPersonalData is set and the
	// request asks reveal=1 (hub-protocol.md §4.4).
	SealKey            *sealed.PrivateKey
	Mask               func(field, value string) string
	RevealPersonalData bool

	// AllowlistDir, if set, is the hubal list directory (hubd allowlist
	// push writes it): the hub answers every agent's allowlist requests
	// from it, one list for all agents (firmware-specs/hub-allowlist.md).
	AllowlistDir string

	// NoClock stops the hub answering agents' clock requests
	// (<root>/v1/<agent>/time/req, firmware-specs/commissioning-report.md
	// §3); by default it answers them.
	NoClock bool

	// EnrolCADir, if set, is a hubca CA directory (hubd ca init): the hub
	// answers boxes' enrolment requests with it (firmware-specs/enrolment.md).
	EnrolCADir string

	// Alerts, if set, are the alert rules (hubd -alerts FILE,
	// firmware-specs/hub-alerts.md): the hub evaluates them over what it
	// commits, delivers to their webhooks and to <root>/v1/$hub/alerts,
	// and serves /ui/alerts and /api/alerts. With a hubstore file, an
	// empty StateFile becomes the file's path + ".alerts.json"; with
	// PostgreSQL it is left as configured.
	Alerts *hubalert.Rules

	// PlanDir, if set, is a roll-out plan directory (hubd plan import):
	// the hub serves coverage at /ui/coverage, /ui/coverage.csv and
	// /ui/coverage.svg (firmware-specs/rollout-plan.md §5).
	PlanDir string

	// Version is the hub's version, in its retained status on
	// <root>/v1/$hub/status (hub-protocol.md §12).
	Version string
	// CommandKey, when set (hubd -cmd-key), lets the lifecycle detector
	// send signed agent.rebirth commands (hub.Options.CommandKey);
	// GapAge and RebirthInterval tune it (zero: hub's defaults).
	CommandKey      ed25519.PrivateKey
	GapAge          time.Duration
	RebirthInterval time.Duration
	// Metrics, if set, builds the handler served at /metrics (cmd/hubd
	// writes the Prometheus text there); it is called once, in New, after
	// the hub is built.
	Metrics func(*Server) http.Handler
}

// store is what the Server owns: *hubstore.Store or *hubpg.Store.
type store interface {
	hub.Store
	Close() error
}

// IsPostgresURL reports whether db names a PostgreSQL database
// (postgres:// or postgresql://) rather than a hubstore file.
func IsPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// Server is a running hub: store, MQTT session, ingest and HTTP API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   store
	session *uplink.Session
	hub     *hub.Hub
	al      *hubal.Server
	enrol   *hubca.Responder
	ln      net.Listener
	// mux serves the hub's JSON API (/api/…) and whatever else the hub
	// mounts on its HTTP listener (the dashboard, metrics): each part adds
	// its routes in New.
	mux *http.ServeMux
	// alerts evaluates and delivers alerts; nil without Config.Alerts.
	alerts *hubalert.Service
	// shared runs the alerts on the leader of the hubs on one PostgreSQL
	// database (leader.go); nil otherwise.
	shared *sharedAlerts
	// fleet is the dashboard's view of the agents; nil without HTTP.
	fleet *hubfleet.Fleet
	ui    *hubui.UI // the dashboard; nil without HTTP

	// instance names this process in its hub status; stopping is set
	// before Run publishes its own offline status.
	instance             string
	stopping             atomic.Bool
	hubStatusRepublished atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// New opens the store, builds the MQTT session and the hub, and binds the
// HTTP listener; it starts nothing (see Run). On any error it closes what
// it opened and returns ErrConfig for an invalid config, or the failing
// component's error (store open, TLS files, listen).
func New(cfg Config) (_ *Server, err error) {
	switch {
	case cfg.DB != "" && cfg.DBPath != "" && cfg.DB != cfg.DBPath:
		return nil, fmt.Errorf("%w: DB and DBPath name different stores", ErrConfig)
	case cfg.DB != "" && !IsPostgresURL(cfg.DB):
		cfg.DBPath, cfg.DB = cfg.DB, ""
	case cfg.DB != "":
		cfg.DBPath = ""
	}
	if cfg.Root == "" || (cfg.DBPath == "" && cfg.DB == "") || cfg.Broker == "" {
		return nil, fmt.Errorf("%w: broker, root and db (path or postgres:// URL) are required", ErrConfig)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "kioskedge-hubd"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			// The construction error is what the caller needs.
			_ = s.Close()
		}
	}()
	if cfg.DB != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		s.store, err = hubpg.Open(ctx, cfg.DB, hubpg.Options{Logger: log.With("component", "hubpg")})
		cancel()
	} else {
		s.store, err = hubstore.Open(cfg.DBPath, hubstore.Options{Logger: log.With("component", "hubstore")})
	}
	if err != nil {
		// A nil *Store in the interface would make Close call it.
		s.store = nil
		return nil, err
	}
	hubStatus := HubStatusTopic(cfg.Root)
	s.instance = cfg.ClientID + "/" + randomHex(4)
	maxMsg := cfg.Limits.MaxMessage
	if maxMsg <= 0 {
		maxMsg = uplink.DefaultMaxMessage
	}
	s.session, err = uplink.NewSession(uplink.SessionOptions{
		Broker:         cfg.Broker,
		ClientID:       cfg.ClientID,
		TLS:            cfg.TLS,
		AllowPlaintext: cfg.AllowPlaintext,
		Backoff:        cfg.Backoff,
		MaxMessage:     maxMsg,
		Logger:         log.With("component", "uplink"),
		// The hub's own retained state (hub-protocol.md §12): online at
		// every connect, offline by the Will when the connection dies and
		// by Run on a clean stop.
		Will: &uplink.Message{Topic: hubStatus, QoS: 1, Retained: true, Payload: hubStatusJSON(wire.StateOffline, "will", cfg.Version, s.instance)},
		OnConnect: func(ctx context.Context, sess *uplink.Session) {
			err := sess.Publish(ctx, uplink.Message{Topic: hubStatus, QoS: 1, Retained: true,
				Payload: hubStatusJSON(wire.StateOnline, "", cfg.Version, s.instance)})
			if err != nil {
				log.Warn("hub status online not acknowledged", "err", err)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	// Several hubs share one status topic: when another one goes offline
	// (its Will, or a clean stop) while this one runs, say online again so
	// the retained state stays true (hub-protocol.md §12).
	if err = s.session.Subscribe(hubStatus, 1, s.onHubStatus); err != nil {
		return nil, err
	}
	if !cfg.NoClock {
		if err = answerClock(s.session, cfg.Root, cfg.ShareGroup, time.Now); err != nil {
			return nil, err
		}
	}
	tr := Adapt(s.session) // the hub's, the allowlist server's and the enrolment responder's
	// The fleet view is built before the hub so the hub can tell it of
	// every committed status and health; it is only needed with HTTP.
	var onAgentChange func(string)
	if cfg.HTTPAddr != "" {
		if s.fleet, err = hubfleet.New(hubfleet.Options{Source: s.store}); err != nil {
			return nil, err
		}
		onAgentChange = s.fleet.Update
	}
	var onCommit func(hubstore.Write)
	if cfg.Alerts != nil {
		rules := *cfg.Alerts
		if rules.StateFile == "" && cfg.DBPath != "" {
			rules.StateFile = cfg.DBPath + ".alerts.json"
		}
		if err = s.shareAlerts(); err != nil {
			return nil, err
		}
		s.alerts, err = hubalert.New(hubalert.Options{Rules: rules, Root: cfg.Root, State: s.alertState(),
			Publish: func(topic string, qos byte, retained bool, payload []byte) <-chan error {
				return s.session.PublishAsync(uplink.Message{Topic: topic, QoS: qos, Retained: retained, Payload: payload})
			},
			States: s.store.Agents, Logger: log.With("component", "alerts")})
		if err != nil {
			return nil, err
		}
		onCommit = s.offerAlert
	}
	s.hub, err = hub.New(hub.Options{
		Root:       cfg.Root,
		Store:      s.store,
		Transport:  tr,
		Limits:     cfg.Limits,
		ShareGroup: cfg.ShareGroup,
		Logger:     log.With("component", "hub"),

		SealKey:            cfg.SealKey,
		Mask:               cfg.Mask,
		RevealPersonalData: cfg.RevealPersonalData,
		OnAgentChange:      onAgentChange,
		OnCommit:           onCommit,

		CommandKey:      cfg.CommandKey,
		GapAge:          cfg.GapAge,
		RebirthInterval: cfg.RebirthInterval,
		// Hubs sharing PostgreSQL with alerts elect a leader; only it
		// sends rebirths, as only it delivers alerts.
		MayCommand: func() bool { l := s.Leader(); return l == nil || l.Leading() },
	})
	if err != nil {
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.mux.Handle("/api/", s.hub.Handler())
	// Further HTTP parts (dashboard, metrics) mount their routes on s.mux
	// here, each in its own block.
	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", cfg.Metrics(s))
	}
	if s.fleet != nil {
		// The fleet dashboard at /ui/ (sync/hubui); / leads to it.
		var links []hubui.Link
		if cfg.PlanDir != "" {
			links = append(links, hubui.Link{Href: hubplan.PathPage, Label: "覆盖 Coverage"})
		}
		if cfg.Alerts != nil {
			links = append(links, hubui.Link{Href: "/ui/alerts", Label: "告警 Alerts"})
		}
		ui, err := hubui.New(hubui.Options{Fleet: s.fleet, Records: s.hub, States: s.store, Links: links,
			Logger: log.With("component", "dashboard")})
		if err != nil {
			return nil, err
		}
		s.mux.Handle("/ui/", ui.Handler())
		s.ui = ui
		s.mux.Handle("GET /{$}", hubui.Redirect())
	}
	if s.alerts != nil {
		// Alert history and state (sync/hubalert).
		s.mux.Handle("GET /ui/alerts", s.alerts.Handler())
		s.mux.Handle("GET /api/alerts", s.alerts.Handler())
	}
	if cfg.PlanDir != "" {
		opts := hubplan.HandlerOptions{Dir: cfg.PlanDir, Fleet: hubplan.FromStore(s.store),
			Logger: log.With("component", "coverage")}
		if s.fleet != nil { // link rows to the dashboard
			opts.AgentsURL = func(region string) string { return "/ui/?region=" + url.QueryEscape(region) }
			opts.AgentURL = func(id string) string { return "/ui/agents/" + url.PathEscape(id) }
		}
		cov, err := hubplan.NewHandler(opts)
		if err != nil {
			return nil, err
		}
		for _, p := range []string{hubplan.PathPage, hubplan.PathCSV, hubplan.PathSVG} {
			s.mux.Handle(p, cov)
		}
	}
	if cfg.AllowlistDir != "" {
		dir, err := hubal.Open(cfg.AllowlistDir)
		if err != nil {
			return nil, err
		}
		s.al, err = hubal.NewServer(hubal.ServerOptions{Dir: dir, Root: cfg.Root, Transport: tr,
			ShareGroup: cfg.ShareGroup, Logger: log.With("component", "allowlist")})
		if err != nil {
			return nil, err
		}
	}
	if cfg.EnrolCADir != "" {
		ca, err := hubca.Open(cfg.EnrolCADir, hubca.Options{})
		if err != nil {
			return nil, err
		}
		s.enrol, err = hubca.NewResponder(hubca.ResponderOptions{CA: ca, Root: cfg.Root, Transport: tr,
			ShareGroup: cfg.ShareGroup, Logger: log.With("component", "enrol")})
		if err != nil {
			return nil, err
		}
	}
	if cfg.HTTPAddr != "" {
		s.ln, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("hubrun: http listen: %w", err)
		}
	}
	return s, nil
}

// Hub returns the ingest, for Stats, AgentReceived, Agents and Wait.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Allowlist returns the allowlist server, nil without Config.AllowlistDir.
func (s *Server) Allowlist() *hubal.Server { return s.al }

// HTTPAddr returns the address the API listens on ("" if none), with the
// real port when Config.HTTPAddr asked for port 0.
func (s *Server) HTTPAddr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Alerts returns the alert service, nil without Config.Alerts.
func (s *Server) Alerts() *hubalert.Service { return s.alerts }

// Fleet returns the dashboard's fleet view, nil without Config.HTTPAddr.
func (s *Server) Fleet() *hubfleet.Fleet { return s.fleet }

// Store returns the hub's store, for reading what was stored (ForEach,
// AgentState). It is valid until Close; the Server owns it, so callers
// must not close it.
func (s *Server) Store() hub.Store { return s.store }

// Session returns the MQTT session, for its stats.
func (s *Server) Session() *uplink.Session { return s.session }

// Run connects to the broker, ingests and serves HTTP until ctx ends. Then
// it commits and acks what is queued, disconnects cleanly, stops the HTTP
// server (waiting up to 5 s for requests in progress) and returns nil; or
// the first component error (a refused subscription, the HTTP server
// failing). It does not close the store: call Close after Run returns.
func (s *Server) Run(ctx context.Context) error {
	// The session outlives the hub's Run so that the final commit's acks
	// can still be published.
	sessCtx, stopSession := context.WithCancel(context.Background())
	defer stopSession()
	hubCtx, stopHub := context.WithCancel(ctx)
	defer stopHub()

	var wg sync.WaitGroup
	// errs keeps the first component error; fail stops the hub on any.
	errs := make(chan error, 1)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
		stopHub()
	}
	wg.Go(func() {
		if err := s.session.Run(sessCtx); err != nil {
			fail(fmt.Errorf("hubrun: mqtt session: %w", err))
		}
	})
	var srv *http.Server
	if s.ln != nil {
		srv = &http.Server{
			Handler:           s.mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.With("component", "http").Handler(), slog.LevelWarn),
		}
		if s.ui != nil {
			// Open dashboards' event streams would hold Shutdown for its
			// whole timeout.
			srv.RegisterOnShutdown(s.ui.Shutdown)
		}
		wg.Go(func() {
			if err := srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("hubrun: http: %w", err))
			}
		})
		s.log.Info("hub http api listening", "addr", s.ln.Addr().String())
	}
	if s.al != nil {
		wg.Go(func() {
			if err := s.al.Run(hubCtx); err != nil {
				fail(err)
			}
		})
	}
	if s.alerts != nil {
		wg.Go(func() {
			s.runAlerts(hubCtx) // leader.go
		})
	}
	if s.enrol != nil {
		wg.Go(func() {
			if err := s.enrol.Run(hubCtx); err != nil {
				fail(err)
			}
		})
	}
	if err := s.hub.Run(hubCtx); err != nil {
		fail(err)
	}
	stopHub() // the allowlist server stops with the ingest
	if srv != nil {
		shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(shCtx); err != nil {
			s.log.Warn("hub http shutdown", "err", err)
		}
		cancel()
	}
	s.stopping.Store(true) // our own offline below is not another hub's
	offline := uplink.Message{Topic: HubStatusTopic(s.cfg.Root), QoS: 1, Retained: true,
		Payload: hubStatusJSON(wire.StateOffline, "shutdown", s.cfg.Version, s.instance)}
	if err := s.session.Close(&offline); err != nil {
		s.log.Warn("mqtt close", "err", err)
	}
	stopSession()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// Close releases the hub's codec, the MQTT session, the listener and the
// store. It is idempotent and safe on a half-built Server; call it after
// Run returned. It returns the store's close error, if any.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.hub != nil {
			// Close never fails; it only releases the codec.
			_ = s.hub.Close()
		}
		if s.session != nil {
			// A never-run or already-closed session has nothing to report.
			_ = s.session.Close(nil)
		}
		if s.ln != nil {
			// Serve closed it already when Run ran; a second close errors.
			_ = s.ln.Close()
		}
		if s.alerts != nil {
			// Close only saves the state; failures are counted and logged.
			_ = s.alerts.Close()
		}
		s.closeShared() // after the alerts' last save
		if s.store != nil {
			s.closeErr = s.store.Close()
		}
	})
	return s.closeErr
}

// HubStatus is the hub's own retained status on HubStatusTopic
// (hub-protocol.md §12).
type HubStatus struct {
	State   string    `json:"state"` // wire.StateOnline or wire.StateOffline
	Time    time.Time `json:"time"`
	Version string    `json:"version,omitempty"`
	Reason  string    `json:"reason,omitempty"` // offline: "shutdown" or "will"
	// Instance tells hubs sharing the topic apart: the client id and a
	// random suffix per process.
	Instance string `json:"instance,omitempty"`
}

// onHubStatus answers another hub instance's offline status, while this
// one runs, with this one's online status, so the retained state says a hub
// is up (a retained offline left by an earlier process is answered too,
// once, at connect). It runs on paho's delivery goroutine: PublishAsync.
func (s *Server) onHubStatus(_ string, payload []byte) {
	var st HubStatus
	if err := json.Unmarshal(payload, &st); err != nil || st.State != wire.StateOffline || st.Instance == s.instance || s.stopping.Load() {
		return
	}
	s.log.Info("another hub instance went offline; republishing this one's online status", "other", st.Instance, "reason", st.Reason)
	s.hubStatusRepublished.Add(1)
	s.session.PublishAsync(uplink.Message{Topic: HubStatusTopic(s.cfg.Root), QoS: 1, Retained: true,
		Payload: hubStatusJSON(wire.StateOnline, "", s.cfg.Version, s.instance)})
}

// HubStatusTopic is <root>/v1/$hub/status.
func HubStatusTopic(root string) string {
	return wire.Topics{Root: root, Agent: wire.HubSegment}.Status()
}

func hubStatusJSON(state, reason, version, instance string) []byte {
	b, err := json.Marshal(HubStatus{State: state, Time: time.Now().UTC(), Version: version, Reason: reason, Instance: instance})
	if err != nil {
		panic(err) // a struct of strings and a time always marshals
	}
	return b
}

// Adapt makes a *uplink.Session a hub.Transport.
func Adapt(s *uplink.Session) hub.Transport { return transport{s} }

type transport struct{ s *uplink.Session }

func (t transport) Subscribe(filter string, qos byte, h func(topic string, payload []byte)) error {
	return t.s.Subscribe(filter, qos, h)
}

func (t transport) PublishAsync(m hub.Message) <-chan error {
	return t.s.PublishAsync(uplink.Message{Topic: m.Topic, QoS: m.QoS, Retained: m.Retained, Payload: m.Payload})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go ≥ 1.24 panics instead)
	return hex.EncodeToString(b)
}
