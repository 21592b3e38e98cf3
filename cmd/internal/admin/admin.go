package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// File names in the data directory.
const (
	TokenFile = "admin.token"
	AddrFile  = "admin.addr"
)

// RecordKindPrefix is the prefix every POST /v1/records kind must have:
// the endpoint is for commissioning reports, not for forging gate or
// kiosk records.
const RecordKindPrefix = "commissioning."

// MaxRecordBody bounds a POST /v1/records request; the record's body
// must also fit wire.MaxBodyLen.
const MaxRecordBody = wire.MaxBodyLen + 1<<10

// TokenPath is <dataDir>/admin.token.
func TokenPath(dataDir string) string { return filepath.Join(dataDir, TokenFile) }

// AddrPath is <dataDir>/admin.addr.
func AddrPath(dataDir string) string { return filepath.Join(dataDir, AddrFile) }

// StatusResponse is GET /v1/status's body.
type StatusResponse struct {
	Health wire.Health `json:"health"`
	// LastSync is when the hub last acknowledged records (RFC 3339), nil
	// if it has not since kioskd started.
	LastSync *time.Time `json:"last_sync"`
}

// PostRecord is POST /v1/records's body.
type PostRecord struct {
	Kind string          `json:"kind"`
	Body json.RawMessage `json:"body"`
}

// PostRecordResponse is POST /v1/records's answer.
type PostRecordResponse struct {
	Seq uint64 `json:"seq"`
}

// errorResponse is every error's body.
type errorResponse struct {
	Error string `json:"error"`
}

// Errors.
var (
	ErrOptions     = errors.New("admin: bad options")
	ErrNotLoopback = errors.New("admin: listen address is not loopback")
)

// Options configure a Server.
type Options struct {
	// Listen is host:port; port 0 picks a free one (see Addr).
	Listen string
	// AllowNonLoopback allows a Listen address that is not loopback.
	AllowNonLoopback bool
	// Token is the bearer token /v1/ requires; required.
	Token string
	// Metrics writes the metric families at each scrape; required.
	Metrics func(*promtext.Writer)
	// Status builds /v1/status; required.
	Status func() StatusResponse
	// Append stores a record durably and returns its sequence number;
	// required.
	Append func(context.Context, wire.Record) (uint64, error)
	// Now stamps posted records [time.Now].
	Now    func() time.Time
	Logger *slog.Logger // nil discards
}

// Server is a listening admin endpoint.
type Server struct {
	o   Options
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// New checks o and listens. A missing option is ErrOptions; an address
// whose host is not loopback is ErrNotLoopback unless AllowNonLoopback; a
// listen failure (address in use, permission) is returned wrapped.
func New(o Options) (*Server, error) {
	if o.Token == "" || o.Metrics == nil || o.Status == nil || o.Append == nil {
		return nil, fmt.Errorf("%w: Token, Metrics, Status and Append are required", ErrOptions)
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: listen %q: %v", ErrOptions, o.Listen, err)
	}
	if !o.AllowNonLoopback && !config.IsLoopbackHost(host) {
		return nil, fmt.Errorf("%w: %q (set admin.allow_non_loopback = true to allow it)", ErrNotLoopback, o.Listen)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	s := &Server{o: o, ln: ln, log: log.With("component", "admin")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.getMetrics)
	mux.Handle("GET /v1/status", s.auth(s.getStatus))
	mux.Handle("POST /v1/records", s.auth(s.postRecord))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then shuts down, giving requests in flight
// a second; it returns nil then, or the serve error.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close() // requests still running after the grace period are cut
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// Close stops listening; use it when Run was never called. It is
// idempotent.
func (s *Server) Close() error {
	err := s.srv.Close()
	if lerr := s.ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) && err == nil {
		err = lerr
	}
	return err
}

func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.o.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kioskd admin"`)
			writeJSON(w, http.StatusUnauthorized, errorResponse{"missing or wrong bearer token; it is in <data_dir>/" + TokenFile})
			return
		}
		h(w, r)
	})
}

func (s *Server) getMetrics(w http.ResponseWriter, _ *http.Request) {
	var b strings.Builder
	pw := promtext.NewWriter(&b)
	s.o.Metrics(pw)
	if err := pw.Flush(); err != nil {
		s.log.Error("metrics", "err", err)
		http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", promtext.ContentType)
	_, _ = io.WriteString(w, b.String()) // a scraper that went away needs no answer
}

func (s *Server) getStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.o.Status())
}

func (s *Server) postRecord(w http.ResponseWriter, r *http.Request) {
	var req PostRecord
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRecordBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{"body is not {\"kind\": …, \"body\": {…}}: " + err.Error()})
		return
	}
	if !strings.HasPrefix(req.Kind, RecordKindPrefix) || len(req.Kind) == len(RecordKindPrefix) {
		writeJSON(w, http.StatusBadRequest, errorResponse{fmt.Sprintf("kind %q: only %s* records may be posted here", req.Kind, RecordKindPrefix)})
		return
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &obj); err != nil || obj == nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{"body must be a JSON object"})
		return
	}
	rec := wire.Record{Kind: req.Kind, Class: wire.ClassCritical, Time: s.o.Now(), Body: req.Body}
	if _, err := wire.MarshalRecord(rec); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{err.Error()})
		return
	}
	seq, err := s.o.Append(r.Context(), rec)
	if err != nil {
		s.log.Error("appending a posted record", "kind", req.Kind, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, errorResponse{"not stored: " + err.Error()})
		return
	}
	s.log.Info("record stored", "kind", req.Kind, "seq", seq)
	writeJSON(w, http.StatusCreated, PostRecordResponse{Seq: seq})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // a client that went away needs no answer
}

// WriteAddrFile writes addr to <dataDir>/admin.addr (mode 0644: an
// address is no secret; the directory guards it anyway), atomically.
func WriteAddrFile(dataDir, addr string) error {
	tmp := AddrPath(dataDir) + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if err := os.Rename(tmp, AddrPath(dataDir)); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}
