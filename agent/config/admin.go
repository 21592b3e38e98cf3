package config

import (
	"fmt"
	"net"
)

// DefaultAdminListen is where the admin endpoint listens unless [admin]
// listen says otherwise: loopback only.
const DefaultAdminListen = "127.0.0.1:7789"

// Admin is the [admin] table: the agent's local admin endpoint, serving
// Prometheus metrics (/metrics) and the running daemon's status for
// kioskctl (/v1/status).
type Admin struct {
	// Enabled runs the endpoint [true].
	Enabled bool `toml:"enabled"`
	// Listen is host:port [DefaultAdminListen]; a non-loopback host is
	// refused unless AllowNonLoopback.
	Listen           string `toml:"listen"`
	AllowNonLoopback bool   `toml:"allow_non_loopback"`
}

func (a Admin) validate() []string {
	if !a.Enabled {
		return nil
	}
	host, port, err := net.SplitHostPort(a.Listen)
	switch {
	case err != nil || port == "":
		return []string{fmt.Sprintf("admin.listen: %q is not host:port like %q", a.Listen, DefaultAdminListen)}
	case !a.AllowNonLoopback && !IsLoopbackHost(host):
		return []string{fmt.Sprintf("admin.listen: %q is not a loopback address; metrics and status are for this box (set admin.allow_non_loopback = true to allow it)", a.Listen)}
	}
	return nil
}

// validRegion reports whether r is 6, 9 or 12 decimal digits.
func validRegion(r string) bool {
	if len(r) != 6 && len(r) != 9 && len(r) != 12 {
		return false
	}
	for _, c := range r {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
