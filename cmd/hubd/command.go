package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// commandCmd runs "hubd cmd keygen|door-open|door-mode|rebirth ..."
// (firmware-specs/hub-commands.md). Results go to stdout.
func commandCmd(args []string, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return commandRun(ctx, args, os.Stdout, stderr)
}

const commandUsage = "usage: hubd cmd keygen|door-open|door-mode|rebirth [flags] (-h lists the flags)"

func commandRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(commandUsage)
	}
	switch args[0] {
	case "keygen":
		return commandKeygen(args[1:], stderr)
	case "door-open", "door-mode", "rebirth":
		return sendCommand(ctx, args[0], args[1:], stdout, stderr)
	}
	return fmt.Errorf("cmd: unknown subcommand %q; %s", args[0], commandUsage)
}

// commandKeygen writes DIR/cmd.key (mode 0600, stays on the hub) and
// DIR/cmd.pub (for every box). It refuses to overwrite either.
func commandKeygen(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd cmd keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write cmd.key and cmd.pub into; required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *out == "" {
		return errors.New("cmd keygen: -out DIR is required, nothing else")
	}
	keyPath, pubPath := filepath.Join(*out, "cmd.key"), filepath.Join(*out, "cmd.pub")
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("cmd keygen: %s exists; not overwriting a key", p)
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := writeNewFile(keyPath, wire.MarshalCommandPrivateKey(priv), 0o600); err != nil {
		return fmt.Errorf("cmd keygen: %w", err)
	}
	if err := writeNewFile(pubPath, wire.MarshalCommandPublicKey(pub), 0o644); err != nil {
		return fmt.Errorf("cmd keygen: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s (private, keep on the hub: hubd cmd -key) and %s (public, for the boxes)\n", keyPath, pubPath)
	return nil
}

// writeNewFile writes a new file (never overwriting one) with mode and
// syncs it.
func writeNewFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close() // the write error is the one to report
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return err
	}
	return f.Close()
}

// loadCommandKey reads cmd.key, refusing a file readable by group or others.
func loadCommandKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s must be a regular file of mode 0600 (it has %v)", path, st.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return nil, err
	}
	return wire.ParseCommandPrivateKey(b)
}

// sendCommand signs one command, publishes it on the agent's cmd topic
// (after subscribing to cmd/result) and waits for the result with its id.
// It returns nil only for a result with code ok.
func sendCommand(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd cmd "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		broker    = fs.String("broker", "", "broker URL: ssl://host:8883, or tcp://host:1883 with -plaintext; required")
		root      = fs.String("root", "kioskedge", "topic root")
		agent     = fs.String("agent", "", "target agent id; required")
		doorID    = fs.String("door", "", "door id; required for door-open and door-mode")
		mode      = fs.String("mode", "", "door-mode only: normal, locked_down or free_passage")
		keyFile   = fs.String("key", "", "the hub's command key (hubd cmd keygen's cmd.key); required")
		expires   = fs.Duration("expires", 60*time.Second, "how long the command stays valid (at most the agents' horizon, 10m by default)")
		timeout   = fs.Duration("timeout", 10*time.Second, "how long to wait for the result")
		clientID  = fs.String("client-id", "", "MQTT client id; default a random one")
		tlsCA     = fs.String("tls-ca", "", "CA certificate (PEM) of the broker; empty for the system roots")
		tlsCert   = fs.String("tls-cert", "", "client certificate (PEM)")
		tlsKey    = fs.String("tls-key", "", "client key (PEM)")
		plaintext = fs.Bool("plaintext", false, "allow a plaintext tcp:// broker (lab only)")
		asJSON    = fs.Bool("json", false, "print the result as JSON")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return fmt.Errorf("cmd %s: unexpected arguments %q", sub, fs.Args())
	case *broker == "" || *agent == "" || *keyFile == "":
		return fmt.Errorf("cmd %s: -broker, -agent and -key are required", sub)
	case sub != "rebirth" && *doorID == "":
		return fmt.Errorf("cmd %s: -door is required", sub)
	case sub == "rebirth" && (*doorID != "" || *mode != ""):
		return errors.New("cmd rebirth: takes no -door or -mode")
	case sub == "door-open" && *mode != "":
		return errors.New("cmd door-open: -mode is for door-mode")
	case *expires <= 0 || *timeout <= 0:
		return fmt.Errorf("cmd %s: -expires and -timeout must be positive", sub)
	}
	if err := wire.ValidateID("agent", *agent); err != nil {
		return err
	}
	priv, err := loadCommandKey(*keyFile)
	if err != nil {
		return fmt.Errorf("-key: %w", err)
	}
	var rawArgs json.RawMessage // agent.rebirth has none
	name := wire.CmdRebirth
	if sub != "rebirth" {
		var argv any = wire.DoorOpenArgs{Door: *doorID}
		name = wire.CmdDoorOpen
		if sub == "door-mode" {
			name, argv = wire.CmdDoorMode, wire.DoorModeArgs{Door: *doorID, Mode: *mode}
		}
		if rawArgs, err = json.Marshal(argv); err != nil {
			return err
		}
		// Check the args as an agent will, so a typo fails here.
		if name == wire.CmdDoorOpen {
			_, err = wire.ParseDoorOpenArgs(rawArgs)
		} else {
			_, err = wire.ParseDoorModeArgs(rawArgs)
		}
		if err != nil {
			return fmt.Errorf("cmd %s: %w", sub, err)
		}
	}
	now := time.Now()
	c := wire.Command{ID: "hubd-" + randomHex(8), Agent: *agent, Name: name, Args: rawArgs,
		Issued: now, Expires: now.Add(*expires), Nonce: randomHex(16)}
	wire.SignCommand(priv, &c)
	payload, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if *clientID == "" {
		*clientID = "kioskedge-hubd-cmd-" + randomHex(4)
	}
	topics := wire.Topics{Root: *root, Agent: *agent}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	results := make(chan wire.CommandResult, 1)
	pubErr := make(chan error, 1)
	var sentNS atomic.Int64 // when the command was published
	var once sync.Once
	opts := uplink.SessionOptions{
		Broker: *broker, ClientID: *clientID, AllowPlaintext: *plaintext, MaxMessage: wire.MaxControlMessage,
		// Subscriptions are renewed before OnConnect runs, so the result
		// topic is subscribed before the command is published.
		OnConnect: func(cctx context.Context, s *uplink.Session) {
			once.Do(func() {
				sentNS.Store(time.Now().UnixNano())
				pubErr <- s.Publish(cctx, uplink.Message{Topic: topics.Cmd(), QoS: 1, Payload: payload})
			})
		},
	}
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		opts.TLS = &uplink.TLSFiles{CAFile: *tlsCA, CertFile: *tlsCert, KeyFile: *tlsKey}
	}
	s, err := uplink.NewSession(opts)
	if err != nil {
		return err
	}
	if err := s.Subscribe(topics.CmdResult(), 1, func(_ string, p []byte) {
		r, err := wire.DecodeCommandResult(p)
		if err != nil || r.ID != c.ID {
			return // another command's result, or noise
		}
		select {
		case results <- r:
		default:
		}
	}); err != nil {
		return err
	}
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()

	var r wire.CommandResult
	for {
		select {
		case err := <-pubErr:
			if err != nil {
				return fmt.Errorf("cmd %s: publishing: %w", sub, err)
			}
			continue
		case r = <-results:
		case <-ctx.Done():
			if sentNS.Load() == 0 {
				return fmt.Errorf("cmd %s: not connected to %s within %v", sub, *broker, *timeout)
			}
			return fmt.Errorf("cmd %s: no result from %s within %v (id %s)", sub, *agent, *timeout, c.ID)
		}
		break
	}
	latency := time.Since(time.Unix(0, sentNS.Load()))
	if *asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		msg := ""
		if r.Message != "" {
			msg = ": " + r.Message
		}
		what := name
		if *doorID != "" {
			what += " door " + *doorID
		}
		fmt.Fprintf(stdout, "%s %s on %s: %s%s (%v)\n", c.ID, what, *agent, r.Code, msg,
			latency.Round(time.Millisecond))
	}
	if !r.OK {
		return fmt.Errorf("cmd %s: refused: %s", sub, r.Code)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand.Read does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
