package localapi

import (
	"bufio"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed openapi.json
var openapiFS embed.FS

// OpenAPI returns the OpenAPI 3.1 document served at /v1/openapi.json.
func OpenAPI() []byte {
	b, err := openapiFS.ReadFile("openapi.json")
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

// Defaults.
const (
	DefaultMaxBody      = 64 << 10
	IdempotencyTTL      = 24 * time.Hour
	IdempotencyEntries  = 10000
	EventBuffer         = 64
	DefaultCardTimeout  = 5 * time.Second
	MaxCardTimeout      = 60 * time.Second
	cardRetryInterval   = 100 * time.Millisecond
	shutdownGrace       = 5 * time.Second
	healthWatchInterval = 500 * time.Millisecond
)

// ErrOptions is wrapped by New's validation errors.
var ErrOptions = errors.New("localapi: bad options")

// Options configure a Server.
type Options struct {
	// Listen is host:port. A non-loopback host is refused unless
	// AllowNonLoopback. Ignored when Listener is set.
	Listen           string
	AllowNonLoopback bool
	// Listener, when set, is used instead of listening on Listen (tests).
	Listener net.Listener
	Token    string // the bearer token; at least 32 characters; required
	// IDSecret keys the transaction ids derived from Idempotency-Keys;
	// keep it stable across restarts. Required.
	IDSecret  []byte
	MaxBody   int64     // request body limit [DefaultMaxBody]
	Outbox    Outbox    // required
	Protector Protector // required when a transaction may carry a credential
	Readers   map[string]CardReader
	Printer   Printer      // nil: /v1/print answers 503 "no_printer"
	Health    HealthSource // nil: no devices
	AgentID   string
	Version   string
	Events    *Broadcaster // nil: a new one (Server.Events)
	Now       func() time.Time
	Logger    *slog.Logger // requests (method, path, status) only; nil discards
	// AllowedOrigins are the exact origins ("http://127.0.0.1:8080") that
	// get CORS headers and preflight answers; empty: no CORS headers.
	AllowedOrigins []string
}

// Server is the local API.
type Server struct {
	o      Options
	ln     net.Listener
	mux    *http.ServeMux
	routes []string     // "METHOD /path", for the OpenAPI test
	idem   *idemCache   // Idempotency-Keys when the outbox is not a OnceAppender
	once   OnceAppender // the outbox, when it is one
	idMACs sync.Pool    // of hash.Hash: HMAC-SHA256 under IDSecret, for transactionID
	events *Broadcaster
	log    *slog.Logger

	wsMu    sync.Mutex
	wsConns map[net.Conn]struct{} // hijacked WebSocket connections
	wsWG    sync.WaitGroup
	closing bool

	closeOnce sync.Once
	closeErr  error

	// plainHTTP, set by tests before Run, hands every connection to
	// net/http at once; fastServed counts the fast path's answers.
	plainHTTP  bool
	fastServed atomic.Uint64
}

// New validates o and listens. It fails (wrapping ErrOptions) on a missing
// Token, IDSecret or Outbox, or a non-loopback Listen without
// AllowNonLoopback; or with the listen error.
func New(o Options) (*Server, error) {
	if len(o.Token) < 32 {
		return nil, fmt.Errorf("%w: Token must be at least 32 characters", ErrOptions)
	}
	if len(o.IDSecret) == 0 {
		return nil, fmt.Errorf("%w: IDSecret is required", ErrOptions)
	}
	if o.Outbox == nil {
		return nil, fmt.Errorf("%w: Outbox is required", ErrOptions)
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, idem: newIdemCache(IdempotencyEntries, IdempotencyTTL, o.Now),
		log: o.Logger.With("component", "localapi"), wsConns: map[net.Conn]struct{}{}}
	s.once, _ = o.Outbox.(OnceAppender)
	s.events = o.Events
	if s.events == nil {
		s.events = NewBroadcaster()
	}
	s.ln = o.Listener
	if s.ln == nil {
		host, _, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: listen %q: %v", ErrOptions, o.Listen, err)
		}
		if !o.AllowNonLoopback && !isLoopback(host) {
			return nil, fmt.Errorf("%w: listen %q is not a loopback address (allow_non_loopback is false)", ErrOptions, o.Listen)
		}
		ln, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return nil, fmt.Errorf("localapi: %w", err)
		}
		s.ln = ln
	}
	s.mux = http.NewServeMux()
	s.handle("POST /v1/transactions", s.postTransaction)
	s.handle("POST /v1/cards/read", s.postCardRead)
	s.handle("POST /v1/print", s.postPrint)
	s.handle("GET /v1/health", s.getHealth)
	s.handle("GET /v1/events", s.getEvents)
	s.handle("GET /v1/openapi.json", s.getOpenAPI)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return s, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.Handle(pattern, s.auth(h))
	method, path, _ := strings.Cut(pattern, " ")
	// Any other method on the path: a JSON 405 (the method-less pattern
	// is less specific than the route's).
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", path+" accepts "+method+" only")
	})
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Events is the broadcaster feeding /v1/events.
func (s *Server) Events() *Broadcaster { return s.events }

// Handler is the server's HTTP handler (authentication included).
func (s *Server) Handler() http.Handler { return s.logged(s.cors(s.mux)) }

// Run serves until ctx ends, then stops accepting, closes the WebSocket
// connections, waits up to 5 s for requests in flight and returns nil.
// Requests in flight whose Append was handed to the outbox still complete
// (outbox.Append waits for the commit). It returns the serve error if
// serving fails otherwise.
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	var wg sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	if s.o.Health != nil {
		wg.Go(func() { s.watchHealth(watchCtx) })
	}
	// Every connection starts on the transaction fast path (fastpath.go),
	// which hands it to srv at its first request of any other kind.
	h := newHandoff(s.ln.Addr())
	conns := &fastConns{idle: map[net.Conn]bool{}}
	fastCtx, cancelFast := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFast()
	errc := make(chan error, 2)
	wg.Go(func() { errc <- srv.Serve(h) })
	wg.Go(func() { errc <- s.serveFast(fastCtx, s.ln, h, conns) })
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopWatch()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	s.closeWebSockets()
	if cerr := s.Close(); cerr != nil {
		s.log.Warn("closing the listener", "err", cerr)
	}
	var fastDone sync.WaitGroup
	fastDone.Go(func() { conns.shutdown(sctx, cancelFast) })
	if serr := srv.Shutdown(sctx); serr != nil {
		s.log.Warn("shutdown", "err", serr)
		_ = srv.Close() // Shutdown's deadline passed; force it
	}
	fastDone.Wait()
	wg.Wait()
	s.wsWG.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("localapi: %w", err)
	}
	return nil
}

// Close closes the listener; it is idempotent and for a Server whose Run
// never ran (Run's shutdown closes it otherwise).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = err
		}
	})
	return s.closeErr
}

func (s *Server) closeWebSockets() {
	s.wsMu.Lock()
	s.closing = true
	for c := range s.wsConns {
		_ = c.Close() // its handler goroutine ends on the read error
	}
	s.wsMu.Unlock()
}

// auth checks "Authorization: Bearer <token>" (or the WebSocket
// subprotocol "bearer.<token>"), comparing in constant time; else 401.
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	want := []byte(s.o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			got = wsToken(r)
		}
		if got == "" || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kioskedge"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
			return
		}
		h(w, r)
	})
}

// statusWriter records the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack lets the WebSocket upgrader take the connection over.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("localapi: connection cannot be hijacked")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

// logged logs method, path, status and duration: never bodies, headers or
// query strings (they may hold personal data or the token).
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.o.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			return // skip building the record's attributes
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"ms", s.o.Now().Sub(start).Milliseconds())
	})
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding the response failed"}}`)
	}
	writeRaw(w, status, b)
}

// Shared header values for writeRaw: net/http only reads a header's
// values (and copies them when it clones the map), so every response can
// point at the same slices instead of allocating two per response.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType // canonical keys, as Set would make them
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	// b may be a cached idempotent response shared by requests: never
	// append to it. A write error means the client went away.
	_, _ = w.Write(b)
	_, _ = w.Write([]byte{'\n'})
}

func errorBody(code, msg string) map[string]any {
	return map[string]any{"error": apiError{Code: code, Message: msg}}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody(code, msg))
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeRaw(w, http.StatusOK, OpenAPI())
}

// HealthResponse is GET /v1/health's body.
type HealthResponse struct {
	Agent   AgentHealth         `json:"agent"`
	Devices []DeviceHealthEntry `json:"devices"`
}

// AgentHealth is the agent's part of the health.
type AgentHealth struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	OK      bool      `json:"ok"` // every device connected
}

// DeviceHealthEntry is one device's health (wire.DeviceHealth).
type DeviceHealthEntry struct {
	Name      string    `json:"name"`
	Connected bool      `json:"connected"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Errors    uint64    `json:"errors"`
	Detail    string    `json:"detail,omitempty"`
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) {
	resp := HealthResponse{Agent: AgentHealth{ID: s.o.AgentID, Version: s.o.Version, Time: s.o.Now(), OK: true},
		Devices: []DeviceHealthEntry{}}
	if s.o.Health != nil {
		for _, d := range s.o.Health.Health() {
			resp.Devices = append(resp.Devices, DeviceHealthEntry(d))
			if !d.Connected {
				resp.Agent.OK = false
			}
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
