// Command kioskd is the KioskEdge agent daemon that runs on each box. This
// version runs the store-and-forward spine (the durable outbox and the
// uplink to the hub, with birth/death and periodic health) and the serial
// devices of the config's [[device]] entries: their health goes into the
// hub's health snapshot and their transitions and events into the outbox.
// The kiosk UI's local API ([localapi], agent/localapi) serves the card
// readers, the printer, health, device events and durable transactions.
// With [[door]] entries it also runs a smart gate (cmd/internal/gate):
// Wiegand readers and door I/O on GPIO lines (drivers/gpioline), offline
// access decisions against the local allowlist, allowlist updates from the
// hub and signed remote commands.
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

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/gate"
	"github.com/kioskedge/kioskedge/cmd/internal/kiosk"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/drivers/gpioline"
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
	var g *gate.Gate
	if len(cfg.Doors) > 0 {
		g, err = gate.Open(gate.Options{Config: cfg, Node: k.Node, Lines: gpioLines, Logger: log})
		if err != nil {
			log.Error("start failed", "err", err)
			return 1
		}
		// Deferred after the node's Close, so it runs first: the doors are
		// halted before the outbox closes.
		defer func() {
			if err := g.Close(); err != nil {
				log.Error("closing gate", "err", err)
			}
		}()
	}
	n := k.Node

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("started", "component", "kioskd", "version", version, "boot_id", n.BootID,
		"broker", cfg.Hub.Broker, "outbox_depth", n.Outbox.Stats().Depth, "devices", n.Monitor.Names())
	if k.API != nil {
		log.Info("local API listening", "component", "localapi", "addr", k.API.Addr().String())
	}
	if err := runAll(ctx, k, g); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped", "component", "kioskd", "err", err)
		return 1
	}
	log.Info("stopped cleanly", "component", "kioskd", "outbox_depth", n.Outbox.Stats().Depth)
	return 0
}

// runAll runs the kiosk (node and local API) and, when there is one, the
// gate, until ctx ends or one of them fails, which stops the other. It
// returns the first error.
func runAll(ctx context.Context, k *kiosk.Kiosk, g *gate.Gate) error {
	if g == nil {
		return k.Run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gateErr := make(chan error, 1)
	go func() {
		err := g.Run(ctx)
		cancel()
		gateErr <- err
	}()
	err := k.Run(ctx)
	cancel()
	return errors.Join(err, <-gateErr)
}

// gpioLines opens a configured line through the kernel's GPIO character
// device.
func gpioLines(_, spec string) (gpio.PinIO, error) {
	s, err := gpioline.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return gpioline.Open(s, gpioline.Options{Consumer: "kioskd"})
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
