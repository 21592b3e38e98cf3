package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/allowpush"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/hubal"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// allowlistCmd runs "hubd allowlist push|show" (firmware-specs/hub-allowlist.md §7).
func allowlistCmd(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("allowlist: want a subcommand: push or show")
	}
	switch args[0] {
	case "push":
		return allowlistPush(args[1:], stderr)
	case "show":
		return allowlistShow(args[1:], stderr)
	}
	return fmt.Errorf("allowlist: unknown subcommand %q (push, show)", args[0])
}

// idList is a repeatable flag of ids of one kind ("agent", "group"), each
// checked by wire.ValidateID.
type idList struct {
	kind string
	ids  []string
}

func (l *idList) String() string { return strings.Join(l.ids, ",") }
func (l *idList) Set(s string) error {
	if err := wire.ValidateID(l.kind, s); err != nil {
		return err
	}
	l.ids = append(l.ids, s)
	return nil
}

func allowlistPush(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd allowlist push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		csvPath   = fs.String("csv", "", "the list: CSV with a header row (firmware-specs/hub-allowlist.md §7); required")
		schedPath = fs.String("schedules", "", "schedules CSV (id,windows,holidays); needed when entries name schedules")
		keyPath   = fs.String("site-key", "", "the site key file (64 hex digits) the agents hash credentials with; required")
		dirPath   = fs.String("dir", "", "the list directory (hubd -allowlist-dir); required")
		tz        = fs.String("tz", "Local", "time zone of date-only valid_from/valid_to, e.g. Asia/Shanghai")
		version   = fs.Uint64("version", 0, "version to publish; 0 means the latest + 1")
		perChunk  = fs.Int("per-chunk", 10000, "records per snapshot chunk")
		keep      = fs.Int("keep", 0, "after publishing, keep only this many newest versions; 0 keeps all")
		broker    = fs.String("broker", "", "if set, publish the new version now to each -agent through this broker")
		root      = fs.String("root", "kioskedge", "topic root")
		clientID  = fs.String("client-id", "kioskedge-hubd-allowlist", "MQTT client id for -broker")
		tlsCA     = fs.String("tls-ca", "", "CA certificate (PEM) of the broker")
		tlsCert   = fs.String("tls-cert", "", "client certificate (PEM)")
		tlsKey    = fs.String("tls-key", "", "client key (PEM)")
		plaintext = fs.Bool("plaintext", false, "allow a plaintext tcp:// broker (lab only)")
		timeout   = fs.Duration("timeout", 30*time.Second, "how long to try publishing with -broker")
		agents    = idList{kind: "agent"}
		groups    = idList{kind: "group"}
	)
	fs.Var(&agents, "agent", "agent id to publish to now (repeatable; needs -broker)")
	fs.Var(&groups, "group", "group to publish to now on its group topic (repeatable; needs -broker)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return fmt.Errorf("allowlist push: unexpected arguments %q", fs.Args())
	case *csvPath == "" || *keyPath == "" || *dirPath == "":
		return errors.New("allowlist push: -csv, -site-key and -dir are required")
	case len(agents.ids)+len(groups.ids) > 0 && *broker == "":
		return errors.New("allowlist push: -agent and -group need -broker")
	case *perChunk < 1:
		return errors.New("allowlist push: -per-chunk must be at least 1")
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("allowlist push: -tz: %w", err)
	}
	siteKey, err := privacy.LoadSiteKey(*keyPath)
	if err != nil {
		return fmt.Errorf("allowlist push: -site-key: %w", err)
	}
	var schedules []allowlist.Schedule
	if *schedPath != "" {
		if schedules, err = readSchedulesFile(*schedPath); err != nil {
			return err
		}
	}
	f, err := os.Open(*csvPath)
	if err != nil {
		return fmt.Errorf("allowlist push: %w", err)
	}
	entries, err := allowpush.ParseEntries(f, *csvPath, siteKey, loc, schedules)
	// A read-only file's close error changes nothing.
	_ = f.Close()
	if err != nil {
		return err
	}
	dir, err := hubal.Open(*dirPath)
	if err != nil {
		return err
	}
	info, err := allowpush.Publish(dir, *version, entries, schedules, *perChunk)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "published allowlist version %d: %d entries, %d schedules, %d chunks, %d bytes",
		info.Version, info.Entries, info.Schedules, info.Chunks, info.Bytes)
	if info.HasDelta() {
		fmt.Fprintf(stderr, "; delta from %d: %d upserts, %d deletes, %d bytes", info.DeltaFrom, info.Upserts, info.Deletes, info.DeltaBytes)
	}
	fmt.Fprintln(stderr)
	if *keep > 0 {
		if err := dir.Prune(*keep); err != nil {
			return err
		}
	}
	if *broker == "" || len(agents.ids)+len(groups.ids) == 0 {
		return nil
	}
	opts := uplink.SessionOptions{Broker: *broker, ClientID: *clientID, AllowPlaintext: *plaintext}
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		opts.TLS = &uplink.TLSFiles{CAFile: *tlsCA, CertFile: *tlsCert, KeyFile: *tlsKey}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var topics []string
	for _, a := range agents.ids {
		topics = append(topics, wire.Topics{Root: *root, Agent: a}.Allowlist())
	}
	for _, g := range groups.ids {
		topics = append(topics, wire.GroupAllowlistTopic(*root, g))
	}
	return pushNow(ctx, opts, dir, info, topics, stderr)
}

// pushNow publishes version info's delta (or, without one, its snapshot)
// to each agent.
func pushNow(ctx context.Context, opts uplink.SessionOptions, dir *hubal.Dir, info hubal.Info, topics []string, stderr io.Writer) error {
	msgs, what, err := allowpush.Messages(dir, info)
	if err != nil {
		return err
	}
	connected := make(chan struct{})
	opts.OnConnect = func(context.Context, *uplink.Session) {
		select {
		case <-connected:
		default:
			close(connected)
		}
	}
	s, err := uplink.NewSession(opts)
	if err != nil {
		return fmt.Errorf("allowlist push: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		// Closing after the publishes were acknowledged; nothing is lost.
		_ = s.Close(nil)
		stop()
		<-done
	}()
	select {
	case <-connected:
	case <-ctx.Done():
		return fmt.Errorf("allowlist push: broker not reached: %w", ctx.Err())
	}
	tr := hubrun.Adapt(s)
	for _, topic := range topics {
		if err := hubal.Send(ctx, tr, topic, msgs); err != nil {
			return fmt.Errorf("allowlist push: publishing on %s: %w", topic, err)
		}
		fmt.Fprintf(stderr, "sent version %d %s on %s\n", info.Version, what, topic)
	}
	return nil
}

func allowlistShow(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd allowlist show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dirPath := fs.String("dir", "", "the list directory; required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *dirPath == "" {
		return errors.New("allowlist show: -dir is required, nothing else")
	}
	if _, err := os.Stat(*dirPath); err != nil {
		return fmt.Errorf("allowlist show: %w", err)
	}
	dir, err := hubal.Open(*dirPath)
	if err != nil {
		return err
	}
	vs, err := dir.List()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%-8s %10s %9s %7s %12s  %-28s %s\n", "version", "entries", "schedules", "chunks", "bytes", "delta", "published")
	for _, v := range vs {
		info, err := dir.Info(v)
		if err != nil {
			fmt.Fprintf(stderr, "%-8d unreadable: %v\n", v, err)
			continue
		}
		delta := "-"
		if info.HasDelta() {
			delta = fmt.Sprintf("from %d: +%d -%d, %dB", info.DeltaFrom, info.Upserts, info.Deletes, info.DeltaBytes)
		}
		fmt.Fprintf(stderr, "%-8d %10d %9d %7d %12d  %-28s %s\n", v, info.Entries, info.Schedules, info.Chunks, info.Bytes, delta,
			info.Published.Format(time.RFC3339))
	}
	if len(vs) == 0 {
		fmt.Fprintln(stderr, "(no versions)")
	}
	return nil
}

func readSchedulesFile(path string) ([]allowlist.Schedule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("allowlist push: %w", err)
	}
	defer f.Close()
	return allowpush.ParseSchedules(f, path)
}
