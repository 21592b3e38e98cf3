package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
)

// DefaultLocalAPIListen is where the kiosk UI's local API listens unless
// [localapi] listen says otherwise: loopback only (DESIGN.md §7).
const DefaultLocalAPIListen = "127.0.0.1:7788"

// LocalAPI is the [localapi] table: the HTTP + WebSocket service the
// kiosk's own UI calls (agent/localapi).
type LocalAPI struct {
	// Enabled runs the local API [true].
	Enabled bool `toml:"enabled"`
	// Listen is host:port [DefaultLocalAPIListen]. A non-loopback host is
	// refused unless AllowNonLoopback is set.
	Listen string `toml:"listen"`
	// AllowNonLoopback allows Listen to name a non-loopback address [false].
	AllowNonLoopback bool `toml:"allow_non_loopback"`
	// TokenFile holds the bearer token; created with mode 0600 at first
	// start [<data_dir>/localapi.token].
	TokenFile string `toml:"token_file"`
	// MaxBody bounds a request body ["64KiB"].
	MaxBody Size `toml:"max_body"`
	// AllowedOrigins are the exact origins ("http://127.0.0.1:8080") of
	// pages allowed to call the API from a browser (CORS) [none: no CORS
	// headers].
	AllowedOrigins []string `toml:"allowed_origins"`
}

// Privacy is the [privacy] table: keys that protect personal data in
// transaction records (DESIGN.md §7).
type Privacy struct {
	// SiteKeyFile holds the site key (32 bytes as 64 hex digits) used for
	// keyed hashes of credentials; optional for now.
	SiteKeyFile string `toml:"site_key_file"`
	// HubPublicKeyFile holds the hub's public key; when set, raw credential
	// numbers in transactions are sealed to it. Optional.
	HubPublicKeyFile string `toml:"hub_public_key_file"`
}

func defaultLocalAPI() LocalAPI {
	return LocalAPI{Enabled: true, Listen: DefaultLocalAPIListen, MaxBody: 64 << 10}
}

// maxLocalAPIBody bounds localapi.max_body: a transaction must still fit
// one outbox record (wire.MaxBodyLen) with its envelope fields.
const maxLocalAPIBody = 1 << 20

func (l LocalAPI) validate() []string {
	var p []string
	if !l.Enabled {
		return nil
	}
	host, port, err := net.SplitHostPort(l.Listen)
	switch {
	case err != nil:
		p = append(p, fmt.Sprintf("localapi.listen: %q is not host:port like %q", l.Listen, DefaultLocalAPIListen))
	case port == "":
		p = append(p, fmt.Sprintf("localapi.listen: %q has no port", l.Listen))
	case !l.AllowNonLoopback && !IsLoopbackHost(host):
		p = append(p, fmt.Sprintf("localapi.listen: %q is not a loopback address; the local API is for the kiosk's own UI (set localapi.allow_non_loopback = true to allow it)", l.Listen))
	}
	if l.MaxBody < 1<<10 || l.MaxBody > maxLocalAPIBody {
		p = append(p, fmt.Sprintf("localapi.max_body: %d out of range 1KiB..1MiB", l.MaxBody))
	}
	for _, o := range l.AllowedOrigins {
		if !isOrigin(o) {
			p = append(p, fmt.Sprintf("localapi.allowed_origins: %q is not an origin like \"http://127.0.0.1:8080\" (scheme://host[:port], no path)", o))
		}
	}
	return p
}

// isOrigin reports whether o is a browser origin: http or https,
// a host, an optional port, nothing else.
func isOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.User == nil && u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !strings.HasSuffix(o, "/")
}

// IsLoopbackHost reports whether host (from host:port) can only be
// reached from this machine: "localhost" or a loopback IP. An empty host
// (all interfaces) is not loopback.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) resolveLocalAPI(baseDir string) {
	resolvePaths(baseDir, &c.LocalAPI.TokenFile, &c.Privacy.SiteKeyFile, &c.Privacy.HubPublicKeyFile)
	if c.LocalAPI.TokenFile == "" {
		c.LocalAPI.TokenFile = filepath.Join(c.Agent.DataDir, "localapi.token")
	}
}
