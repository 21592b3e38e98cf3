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
//	kioskd -version
//
// As a service (deploy/kioskd.service, Type=notify) it tells systemd
// READY=1 once the outbox, devices, gate and admin endpoint are open,
// keeps a STATUS= line (outbox depth, hub link, devices up), and pings the
// watchdog only while its loops make progress (liveness.go says what
// "hung" means). The admin endpoint ([admin], cmd/internal/admin) serves
// /metrics, /v1/status and POST /v1/records for kioskctl. SIGHUP rereads
// the config: the log level applies at once; every other changed key is
// logged as needing a restart; an invalid file is rejected with its
// problems and the running config kept. SIGTERM or SIGINT stop it
// cleanly (STOPPING=1, doors halted, death message sent).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/localapi"
	"github.com/kioskedge/kioskedge/cmd/internal/admin"
	"github.com/kioskedge/kioskedge/cmd/internal/gate"
	"github.com/kioskedge/kioskedge/cmd/internal/kiosk"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/cmd/internal/sdnotify"
	"github.com/kioskedge/kioskedge/drivers/gpioline"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kioskd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/kioskedge/kioskd.toml", "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "kioskd", version)
		return 0
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
	// Signals are caught from here on: a reload or stop asked for while
	// the devices open waits for the main loop instead of killing kioskd
	// (SIGHUP's default action).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	log := newLogger(cfg.Log, level, stderr).With("agent", cfg.Agent.ID)
	own := log.With("component", "kioskd")

	notify, err := sdnotify.New(sdnotify.Options{})
	if err != nil {
		own.Warn("systemd environment", "err", err)
	}
	defer notify.Close()

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
	svc := newService(cfg.Agent.ID, n, notify, log)
	var g *gate.Gate
	if len(cfg.Doors) > 0 {
		g, err = gate.Open(gate.Options{Config: cfg, Node: n, Lines: gpioLines, Logger: log, OnDecision: svc.countDecision})
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
		svc.g = g
	}
	adm := openAdmin(cfg, svc, n, log)
	if adm != nil {
		defer func() {
			// The address file must not point kioskctl at a stopped daemon.
			if err := os.Remove(admin.AddrPath(cfg.Agent.DataDir)); err != nil && !errors.Is(err, iofs.ErrNotExist) {
				own.Warn("removing the admin address file", "err", err)
			}
		}()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	own.Info("started", "version", version, "boot_id", n.BootID,
		"broker", cfg.Hub.Broker, "outbox_depth", n.Outbox.Stats().Depth, "devices", n.Monitor.Names())
	if k.API != nil {
		log.Info("local API listening", "component", "localapi", "addr", k.API.Addr().String())
	}

	var wg sync.WaitGroup
	runErr := make(chan error, 1)
	wg.Go(func() { runErr <- runAll(ctx, k, g) })
	if adm != nil {
		wg.Go(func() {
			if err := adm.Run(ctx); err != nil {
				// Metrics and status are for people; the doors and
				// records go on without them.
				log.Error("admin endpoint stopped", "component", "admin", "err", err)
			}
		})
	}
	if p := notify.PingInterval(); p > 0 {
		svc.live = liveness{period: notify.WatchdogPeriod(), ackTimeout: cfg.Hub.AckTimeout.D()}
		ticker := time.NewTicker(p)
		wg.Go(func() {
			defer ticker.Stop()
			notify.RunWatchdog(ctx, ticker.C, func(now time.Time) error {
				return svc.alive(ctx, now)
			}, func(err error) {
				svc.watchdogMissed.Add(1)
				own.Error("watchdog ping withheld: the agent looks hung; systemd will restart it", "err", err)
			})
		})
		own.Info("systemd watchdog on", "period", notify.WatchdogPeriod().String(), "ping_every", p.String())
	}
	line := svc.statusLine()
	if err := notify.Ready(line); err != nil {
		own.Warn("telling systemd we are ready", "err", err)
	}

	err = svc.loop(ctx, cancel, sigs, runErr, *cfgPath, &cfg, level, line)
	wg.Wait()
	svc.probes.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		own.Error("stopped", "err", err)
		return 1
	}
	own.Info("stopped cleanly", "outbox_depth", n.Outbox.Stats().Depth)
	return 0
}

// loop is the main loop: it keeps the systemd status line and the last
// sync time current, reloads on SIGHUP and stops on SIGTERM/SIGINT or
// when the agent fails. It returns the agent's error (nil on a clean stop)
// once runAll has returned.
func (s *service) loop(ctx context.Context, cancel context.CancelFunc, sigs <-chan os.Signal, runErr <-chan error,
	cfgPath string, running *config.Config, level *slog.LevelVar, line string) error {
	own := s.log.With("component", "kioskd")
	// The watchdog wants a tick at least twice per half period.
	every := time.Second
	if p := s.notify.WatchdogPeriod(); p > 0 {
		every = min(every, p/4)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case err := <-runErr:
			_ = s.notify.Stopping("stopping: " + errText(err)) // best effort: we exit anyway
			cancel()
			return err
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				own.Info("stopping", "signal", sig.String())
				_ = s.notify.Stopping("stopping on " + sig.String()) // best effort: we exit anyway
				cancel()
				return <-runErr
			}
			line = s.reload(cfgPath, running, level)
		case now := <-tick.C:
			s.loopAt.Store(now.UnixNano())
			s.noteSync()
			if l := s.statusLine(); l != line {
				line = l
				if err := s.notify.Status(l); err != nil {
					own.Debug("systemd status", "err", err)
				}
			}
		case <-ctx.Done():
			return <-runErr
		}
	}
}

// reload handles SIGHUP and returns the status line it left.
func (s *service) reload(cfgPath string, running *config.Config, level *slog.LevelVar) string {
	own := s.log.With("component", "kioskd")
	_ = s.notify.Reloading("reloading " + cfgPath) // best effort
	r, err := reload(cfgPath, running, level)
	line := s.statusLine()
	if err != nil {
		s.reloadsFailed.Add(1)
		own.Error("config reload rejected; the running config is kept", "config", cfgPath, "err", err)
		line += "; last reload rejected (see the log)"
	} else {
		s.reloadsOK.Add(1)
		for _, k := range r.Applied {
			own.Info(k+" changed: applied", "key", k)
		}
		for _, k := range r.Restart {
			own.Warn(k+" changed: restart kioskd to apply", "key", k)
		}
		if len(r.Restart) > 0 {
			line += fmt.Sprintf("; %d config changes wait for a restart", len(r.Restart))
		}
		own.Info("config reloaded", "applied", len(r.Applied), "need_restart", len(r.Restart))
	}
	if err := s.notify.Ready(line); err != nil {
		own.Warn("telling systemd the reload is over", "err", err)
	}
	return line
}

func errText(err error) string {
	if err == nil {
		return "agent stopped"
	}
	return err.Error()
}

// openAdmin opens the admin endpoint when [admin] enabled. A failure is
// logged, not fatal: the doors and records do not depend on it.
func openAdmin(cfg config.Config, svc *service, n *node.Node, log *slog.Logger) *admin.Server {
	if !cfg.Admin.Enabled {
		return nil
	}
	alog := log.With("component", "admin")
	token, err := localapi.LoadOrCreateToken(admin.TokenPath(cfg.Agent.DataDir))
	if err != nil {
		alog.Error("admin endpoint not started: token file", "err", err)
		return nil
	}
	adm, err := admin.New(admin.Options{
		Listen: cfg.Admin.Listen, AllowNonLoopback: cfg.Admin.AllowNonLoopback, Token: token,
		Metrics: svc.writeMetrics, Status: svc.status, Append: n.Append, Logger: log,
	})
	if err != nil {
		alog.Error("admin endpoint not started", "listen", cfg.Admin.Listen, "err", err)
		return nil
	}
	addr := adm.Addr().String()
	if err := admin.WriteAddrFile(cfg.Agent.DataDir, addr); err != nil {
		alog.Warn("admin address file not written; kioskctl will use admin.listen", "err", err)
	}
	alog.Info("admin endpoint listening", "addr", addr)
	return adm
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

// newLogger builds the one logger; level can change later (SIGHUP).
func newLogger(c config.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
