package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// ErrInvalid wraps every validation failure; errors.Is(err, ErrInvalid)
// tells a bad file from an unreadable one.
var ErrInvalid = errors.New("config: invalid")

// Config is the agent's whole configuration.
type Config struct {
	Agent  Agent  `toml:"agent"`
	Hub    Hub    `toml:"hub"`
	Outbox Outbox `toml:"outbox"`
	Log    Log    `toml:"log"`
	// LocalAPI is the kiosk UI's local device service, from [localapi].
	LocalAPI LocalAPI `toml:"localapi"`
	// Privacy holds the keys protecting personal data, from [privacy].
	Privacy Privacy `toml:"privacy"`
	// Devices are the serial devices the agent runs, from [[device]].
	Devices []Device `toml:"device"`
	// Admin is the local admin endpoint (metrics, status), from [admin].
	Admin Admin `toml:"admin"`
	// Gate holds what the doors of a smart gate share, from [gate].
	Gate Gate `toml:"gate"`
	// Doors are the gate's doors, from [[door]]; Wiegand their Wiegand
	// readers, from [[wiegand]].
	Doors   []Door    `toml:"door"`
	Wiegand []Wiegand `toml:"wiegand"`
}

// Agent identifies the box.
type Agent struct {
	ID      string `toml:"id"`       // agent id, unique in the province; used in every topic
	DataDir string `toml:"data_dir"` // outbox and state files live here
	// Site names where the box stands (a community, a service centre);
	// free text for operators, optional.
	Site string `toml:"site"`
	// Region is the administrative region code of the site (GB/T 2260:
	// 6 digits for a county, 9 for a township, 12 for a community or
	// village); optional, used by the hub for roll-out coverage.
	Region string `toml:"region"`
}

// Hub is the MQTT link to the provincial hub.
type Hub struct {
	Broker         string   `toml:"broker"` // tcp://, ssl://, mqtts://
	Root           string   `toml:"root"`   // topic root, e.g. "kioskedge/prov-a"
	CAFile         string   `toml:"ca_file"`
	CertFile       string   `toml:"cert_file"`
	KeyFile        string   `toml:"key_file"`
	Plaintext      bool     `toml:"plaintext"` // lab only: allow tcp:// without TLS
	Username       string   `toml:"username"`
	PasswordFile   string   `toml:"password_file"`
	KeepAlive      Duration `toml:"keepalive"`
	BatchRecords   int      `toml:"batch_records"`
	BatchBytes     Size     `toml:"batch_bytes"`
	Window         int      `toml:"window"`
	AckTimeout     Duration `toml:"ack_timeout"`
	HealthInterval Duration `toml:"health_interval"`
	BackoffMin     Duration `toml:"backoff_min"`
	BackoffMax     Duration `toml:"backoff_max"`
	BackoffStable  Duration `toml:"backoff_stable"`
	// ReconnectSpread: after a connection that was up is lost, the
	// reconnects are spread at random over at least this window (capped at
	// BackoffMax), so a fleet whose broker restarted does not come back in
	// the same second (uplink.Backoff.Spread). Default 30s: 1,000 boxes at
	// about 3-7% per second. "0s" spreads nothing: a box alone on its
	// broker reconnects within backoff_min, a fleet all at once.
	ReconnectSpread Duration `toml:"reconnect_spread"`
	// ClockCheckInterval is how often the agent measures its clock's
	// offset from the hub's; ClockMaxSkew the bound beyond which it
	// raises a clock.skew alarm (DESIGN.md §9: 5 s, synchronised daily).
	ClockCheckInterval Duration `toml:"clock_check_interval"`
	ClockMaxSkew       Duration `toml:"clock_max_skew"`
}

// Outbox bounds the local queue.
type Outbox struct {
	Budget       Size `toml:"budget"`        // disk budget for queued records; "0" = unlimited
	ReclaimAbove Size `toml:"reclaim_above"` // swap the file for a fresh one when drained and bigger than this
}

// Log selects the log format and level.
type Log struct {
	Format string `toml:"format"` // "json" (default) or "text"
	Level  string `toml:"level"`  // "debug", "info" (default), "warn", "error"
}

// Defaults returns the configuration every file starts from.
func Defaults() Config {
	return Config{
		Hub: Hub{
			KeepAlive:          Duration(30 * time.Second),
			BatchRecords:       2000,
			BatchBytes:         512 << 10,
			Window:             32,
			AckTimeout:         Duration(15 * time.Second),
			HealthInterval:     Duration(60 * time.Second),
			BackoffMin:         Duration(time.Second),
			BackoffMax:         Duration(2 * time.Minute),
			BackoffStable:      Duration(time.Minute),
			ReconnectSpread:    Duration(30 * time.Second),
			ClockCheckInterval: Duration(time.Hour),
			ClockMaxSkew:       Duration(5 * time.Second),
		},
		Outbox:   Outbox{Budget: 1 << 30, ReclaimAbove: 64 << 20},
		Log:      Log{Format: "json", Level: "info"},
		LocalAPI: defaultLocalAPI(),
		Gate:     defaultGate(),
		Admin:    Admin{Enabled: true, Listen: DefaultAdminListen},
	}
}

// Load reads path, applies it over Defaults and validates it. Relative file
// paths in the config are resolved against the config file's directory.
// It returns an error wrapping ErrInvalid that lists every problem (each
// naming its key) for a bad file, or the read error for an unreadable one.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b, filepath.Dir(path))
}

// Parse decodes and validates a config held in memory; see Load. baseDir
// resolves relative paths ("" leaves them as they are).
func Parse(b []byte, baseDir string) (Config, error) {
	c := Defaults()
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var problems []string
	for _, k := range md.Undecoded() {
		problems = append(problems, fmt.Sprintf("%s: unknown key", k))
	}
	problems = append(problems, c.validate()...)
	problems = append(problems, validateDevices(c.Devices)...)
	problems = append(problems, c.LocalAPI.validate()...)
	problems = append(problems, c.validateGate()...)
	problems = append(problems, c.Admin.validate()...)
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("%w:\n  %s", ErrInvalid, strings.Join(problems, "\n  "))
	}
	resolvePaths(baseDir, &c.Agent.DataDir, &c.Hub.CAFile, &c.Hub.CertFile, &c.Hub.KeyFile, &c.Hub.PasswordFile)
	for i := range c.Devices {
		if o := c.Devices[i].OSDP; o != nil {
			for j := range o.Readers {
				resolvePaths(baseDir, &o.Readers[j].KeyFile)
			}
		}
	}
	c.resolveLocalAPI(baseDir)
	c.resolveGate(baseDir)
	applyDeviceDefaults(c.Devices)
	return c, nil
}

// resolvePaths makes each non-empty relative path absolute under baseDir;
// an empty baseDir leaves them as they are.
func resolvePaths(baseDir string, paths ...*string) {
	if baseDir == "" {
		return
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(baseDir, *p)
		}
	}
}

func (c Config) validate() []string {
	var p []string
	bad := func(key, format string, args ...any) { p = append(p, key+": "+fmt.Sprintf(format, args...)) }
	if err := wire.ValidateID("agent.id", c.Agent.ID); err != nil {
		bad("agent.id", "%v", strings.TrimPrefix(err.Error(), "wire: "))
	}
	if c.Agent.DataDir == "" {
		bad("agent.data_dir", "required")
	}
	if r := c.Agent.Region; r != "" && !validRegion(r) {
		bad("agent.region", "%q is not an administrative region code (6, 9 or 12 digits, e.g. 460105)", r)
	}
	h := c.Hub
	if h.Broker == "" {
		bad("hub.broker", "required")
	} else if u, err := url.Parse(h.Broker); err != nil || u.Host == "" {
		bad("hub.broker", "%q is not a URL like ssl://host:8883", h.Broker)
	} else {
		switch u.Scheme {
		case "ssl", "tls", "mqtts":
			if h.CertFile == "" || h.KeyFile == "" {
				bad("hub.cert_file", "a TLS broker needs cert_file and key_file (the box's client certificate)")
			}
		case "tcp", "mqtt":
			if !h.Plaintext {
				bad("hub.broker", "%q is plaintext; use ssl:// with a client certificate, or set hub.plaintext = true in a lab", h.Broker)
			}
		default:
			bad("hub.broker", "unknown scheme %q (tcp, ssl, mqtts)", u.Scheme)
		}
	}
	if h.Root == "" {
		bad("hub.root", "required")
	} else {
		for _, seg := range strings.Split(h.Root, "/") {
			if err := wire.ValidateID("segment", seg); err != nil {
				bad("hub.root", "segment %q: %v", seg, strings.TrimPrefix(err.Error(), "wire: "))
				break
			}
		}
	}
	if (h.CertFile == "") != (h.KeyFile == "") {
		bad("hub.key_file", "cert_file and key_file go together")
	}
	positive := []struct {
		key string
		d   Duration
	}{{"hub.keepalive", h.KeepAlive}, {"hub.ack_timeout", h.AckTimeout}, {"hub.health_interval", h.HealthInterval},
		{"hub.backoff_min", h.BackoffMin}, {"hub.backoff_max", h.BackoffMax}, {"hub.backoff_stable", h.BackoffStable},
		{"hub.clock_check_interval", h.ClockCheckInterval}, {"hub.clock_max_skew", h.ClockMaxSkew}}
	for _, x := range positive {
		if x.d <= 0 {
			bad(x.key, "must be a positive duration such as \"30s\"")
		}
	}
	if h.ReconnectSpread < 0 {
		bad("hub.reconnect_spread", "must not be negative (\"0s\" spreads nothing)")
	}
	if h.BackoffMax < h.BackoffMin {
		bad("hub.backoff_max", "smaller than hub.backoff_min")
	}
	if h.BatchRecords < 1 || h.BatchRecords > 50_000 {
		bad("hub.batch_records", "%d out of range 1..50000", h.BatchRecords)
	}
	if h.BatchBytes < 4<<10 || h.BatchBytes > 4<<20 {
		bad("hub.batch_bytes", "%d out of range 4KiB..4MiB", h.BatchBytes)
	}
	if h.Window < 1 || h.Window > 256 {
		bad("hub.window", "%d out of range 1..256", h.Window)
	}
	if c.Outbox.Budget != 0 && c.Outbox.Budget < 1<<20 {
		bad("outbox.budget", "%d bytes is below 1MiB (0 means unlimited)", c.Outbox.Budget)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "%q is not json or text", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	return p
}

// Duration is a time.Duration written as a string ("30s", "2m") in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"30s\"", b)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as an integer or a string with a binary
// unit ("512MiB", "64KiB", "1GiB") in TOML.
type Size int64

// UnmarshalText parses "123", "64KiB", "512MiB" or "1GiB".
func (s *Size) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(str, u.suffix); ok {
			str, mult = strings.TrimSpace(v), u.m
			break
		}
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return fmt.Errorf("%q is not a size like \"512MiB\"", b)
	}
	*s = Size(n * mult)
	return nil
}
