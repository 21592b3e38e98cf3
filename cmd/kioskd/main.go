// Command kioskd is the KioskEdge agent daemon that runs on each box. This
// version runs the store-and-forward spine (the durable outbox and the
// uplink to the hub, with birth/death and periodic health) and the serial
// devices of the config's [[device]] entries: their health goes into the
// hub's health snapshot and their transitions and events into the outbox.
// The kiosk UI's local API ([localapi], agent/localapi) serves the card
// readers, the printer, health, device events and durable transactions.
// Access decisions are wired here as they land.
//
//	kioskd -config /etc/kioskedge/kioskd.toml
//	kioskd -config kioskd.toml -check   # validate the config and exit
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

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/kiosk"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kioskd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/kioskedge/kioskd.toml", "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "kioskd: %s: %v\n", *cfgPath, err)
		return 2
	}
	if *check {
		fmt.Fprintf(stderr, "kioskd: %s: ok\n", *cfgPath)
		return 0
	}
	log := newLogger(cfg.Log, stderr).With("agent", cfg.Agent.ID)

	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		log.Error("codec", "err", err)
		return 1
	}
	defer codec.Close()
	k, err := kiosk.Open(node.Options{Config: cfg, Version: version, Codec: codec, Logger: log})
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	defer func() {
		if err := k.Close(); err != nil {
			log.Error("closing outbox", "err", err)
		}
	}()
	n := k.Node

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("started", "component", "kioskd", "version", version, "boot_id", n.BootID,
		"broker", cfg.Hub.Broker, "outbox_depth", n.Outbox.Stats().Depth, "devices", n.Monitor.Names())
	if k.API != nil {
		log.Info("local API listening", "component", "localapi", "addr", k.API.Addr().String())
	}
	if err := k.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped", "component", "kioskd", "err", err)
		return 1
	}
	log.Info("stopped cleanly", "component", "kioskd", "outbox_depth", n.Outbox.Stats().Depth)
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
