package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
)

// version is the hub's version, in its retained status (hub-protocol.md
// §12); the build sets it with -ldflags "-X main.version=…".
var version = "dev"

// lifecycleConfig sets the hub's version, its /metrics handler and, with a
// command key file, the key the lifecycle detector signs agent.rebirth
// with. It fails naming -cmd-key when the key cannot be loaded.
func lifecycleConfig(cfg *hubrun.Config, cmdKey string, gapAge, rebirthEvery time.Duration, src metricsSources) error {
	cfg.Version = version
	cfg.GapAge, cfg.RebirthInterval = gapAge, rebirthEvery
	cfg.Metrics = func(s *hubrun.Server) http.Handler { return metricsHandler(s, src) }
	if cmdKey == "" {
		return nil
	}
	k, err := loadCommandKey(cmdKey)
	if err != nil {
		return fmt.Errorf("-cmd-key: %w", err)
	}
	cfg.CommandKey = k
	return nil
}
