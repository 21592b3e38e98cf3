package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/hubalert"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/uplink"
)

func main() {
	err := run(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hubd:", err)
		os.Exit(1)
	}
}

// run parses args and runs the hub until SIGINT or SIGTERM, or runs the
// keygen subcommand. It returns an error for bad flags or a component
// failing to start or run.
func run(args []string, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return keygen(args[1:], stderr)
		case "allowlist":
			return allowlistCmd(args[1:], stderr) // allowlist.go
		case "cmd":
			return commandCmd(args[1:], stderr) // command.go
		case "import":
			return importCmd(args[1:], stderr) // import.go
		case "ca":
			return caCmd(args[1:], stderr) // ca.go
		case "claim":
			return claimCmd(args[1:], stderr) // ca.go
		case "plan":
			return planCmd(args[1:], stderr) // plan.go
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args, stderr)
}

// serve runs the hub until ctx ends.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		broker    = fs.String("broker", "", "broker URL: ssl://host:8883, or tcp://host:1883 with -plaintext")
		root      = fs.String("root", "kioskedge", "topic root the agents publish under")
		db        = fs.String("db", "hubd.db", "the hub's store: a bbolt file path, or a postgres://user:pass@host/db URL (PostgreSQL, shared by hubs run with the same -share)")
		httpAddr  = fs.String("http", "127.0.0.1:8740", "JSON API listen address; empty for none")
		share     = fs.String("share", "", "shared-subscription group, to run several hubs side by side")
		clientID  = fs.String("client-id", "kioskedge-hubd", "MQTT client id")
		tlsCA     = fs.String("tls-ca", "", "CA certificate (PEM) of the broker; empty for the system roots")
		tlsCert   = fs.String("tls-cert", "", "client certificate (PEM)")
		tlsKey    = fs.String("tls-key", "", "client key (PEM)")
		plaintext = fs.Bool("plaintext", false, "allow a plaintext tcp:// broker (lab only)")
		level     = fs.String("log-level", "info", "debug, info, warn or error")
		sealKey   = fs.String("seal-key", "", "the hub's private key file (hubd keygen); opens sealed personal data for the records API, masked")
		reveal    = fs.Bool("reveal-personal-data", false, "let records API requests with reveal=1 see opened personal data unmasked (needs -seal-key)")
		alDir     = fs.String("allowlist-dir", "", "serve agents' allowlist requests from this list directory (hubd allowlist push -dir); empty for none")
		enrolCA   = fs.String("enrol-ca", "", "answer boxes' enrolment requests with this CA directory (hubd ca init); empty for none")
		alerts    = fs.String("alerts", "", "alert rules file (TOML, firmware-specs/hub-alerts.md); empty for no alerts")
		cmdKey    = fs.String("cmd-key", "", "the command key (hubd cmd keygen's cmd.key): send agent.rebirth to agents with gaps or stale births; empty only records them")
		gapAge    = fs.Duration("gap-age", 0, "how long a missing sequence range may stand before it counts as a gap (0: 2m)")
		rebirthIv = fs.Duration("rebirth-interval", 0, "least time between two agent.rebirth to one agent (0: 10m)")
		planDir   = fs.String("plan-dir", "", "serve roll-out coverage (/ui/coverage) from this plan directory (hubd plan import -dir); empty for none")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lv})).With("service", "hubd")
	if *broker == "" {
		return errors.New("-broker is required")
	}
	cfg := hubrun.Config{
		Broker:         *broker,
		ClientID:       *clientID,
		AllowPlaintext: *plaintext,
		Root:           *root,
		DB:             *db, // a path or a postgres:// URL
		ShareGroup:     *share,
		HTTPAddr:       *httpAddr,
		Logger:         log,
		AllowlistDir:   *alDir,
		EnrolCADir:     *enrolCA,
		PlanDir:        *planDir,
	}
	if err := lifecycleConfig(&cfg, *cmdKey, *gapAge, *rebirthIv, metricsSources{}); err != nil {
		return err
	}
	if *alerts != "" {
		rules, err := hubalert.LoadRules(*alerts)
		if err != nil {
			return fmt.Errorf("-alerts: %w", err)
		}
		cfg.Alerts = &rules
		alertMetrics(&cfg) // after lifecycleConfig set the plain /metrics
	}
	if *reveal && *sealKey == "" {
		return errors.New("-reveal-personal-data needs -seal-key")
	}
	if *sealKey != "" {
		k, err := sealed.LoadPrivateKey(*sealKey)
		if err != nil {
			return fmt.Errorf("-seal-key: %w", err)
		}
		cfg.SealKey, cfg.Mask, cfg.RevealPersonalData = k, maskPersonal, *reveal
	}
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		cfg.TLS = &uplink.TLSFiles{CAFile: *tlsCA, CertFile: *tlsCert, KeyFile: *tlsKey}
	}
	srv, err := hubrun.New(cfg)
	if err != nil {
		return err
	}
	log.Info("hubd starting", "root", *root, "db", redactDB(*db), "http", *httpAddr, "share_group", *share,
		"seal_key", *sealKey != "", "reveal_personal_data", *reveal)
	if *reveal {
		log.Warn("records API may reveal personal data (requests with reveal=1)")
	}
	runErr := srv.Run(ctx)
	closeErr := srv.Close()
	if runErr != nil {
		return runErr
	}
	if closeErr != nil {
		return closeErr
	}
	log.Info("hubd stopped")
	return nil
}

// redactDB returns db for the log: a PostgreSQL URL without its password
// (and without a password=… query parameter), a path as is.
func redactDB(db string) string {
	if !hubrun.IsPostgresURL(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// alertMetrics makes /metrics report alerts firing by rule when cfg has
// alert rules; the alert service exists once hubrun.New calls Metrics.
func alertMetrics(cfg *hubrun.Config) {
	if cfg.Alerts != nil {
		cfg.Metrics = func(s *hubrun.Server) http.Handler {
			return metricsHandler(s, metricsSources{AlertsFiring: s.Alerts().FiringByRule})
		}
	}
}

// maskPersonal masks an opened sealed field for the records API: names
// (fields named *name_sealed) keep their first character, numbers their
// first and last four (credential.Mask).
func maskPersonal(field, value string) string {
	if strings.HasSuffix(field, "name_sealed") {
		return credential.MaskName(value)
	}
	return credential.Mask(value)
}

// keygen writes a new hub key pair: DIR/hub.key (mode 0600; stays on the
// hub, passed as -seal-key) and DIR/hub.pub (copied to every box). It
// refuses to overwrite either file.
func keygen(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write hub.key and hub.pub into; required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("keygen: unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return errors.New("keygen: -out is required")
	}
	keyPath, pubPath := filepath.Join(*out, "hub.key"), filepath.Join(*out, "hub.pub")
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("keygen: %s exists; not overwriting a key", p)
		}
	}
	priv, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		return err
	}
	if err := sealed.WritePrivateKey(keyPath, priv); err != nil {
		return err
	}
	if err := sealed.WritePublicKey(pubPath, pub); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (private, keep on the hub: -seal-key) and %s (public, for the boxes)\n", keyPath, pubPath)
	return nil
}
