package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
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

// run parses args and runs the hub until SIGINT or SIGTERM. It returns an
// error for bad flags or a component failing to start or run.
func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		broker    = fs.String("broker", "", "broker URL: ssl://host:8883, or tcp://host:1883 with -plaintext")
		root      = fs.String("root", "kioskedge", "topic root the agents publish under")
		db        = fs.String("db", "hubd.db", "path of the hub's bbolt store")
		httpAddr  = fs.String("http", "127.0.0.1:8740", "JSON API listen address; empty for none")
		share     = fs.String("share", "", "shared-subscription group, to run several hubs side by side")
		clientID  = fs.String("client-id", "kioskedge-hubd", "MQTT client id")
		tlsCA     = fs.String("tls-ca", "", "CA certificate (PEM) of the broker; empty for the system roots")
		tlsCert   = fs.String("tls-cert", "", "client certificate (PEM)")
		tlsKey    = fs.String("tls-key", "", "client key (PEM)")
		plaintext = fs.Bool("plaintext", false, "allow a plaintext tcp:// broker (lab only)")
		level     = fs.String("log-level", "info", "debug, info, warn or error")
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
		DBPath:         *db,
		ShareGroup:     *share,
		HTTPAddr:       *httpAddr,
		Logger:         log,
	}
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		cfg.TLS = &uplink.TLSFiles{CAFile: *tlsCA, CertFile: *tlsCert, KeyFile: *tlsKey}
	}
	srv, err := hubrun.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("hubd starting", "root", *root, "db", *db, "http", *httpAddr, "share_group", *share)
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
