package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// paho logs through four package-level variables (mqtt.ERROR, CRITICAL,
// WARN, DEBUG) shared by every client in the process, so they cannot carry
// a per-session logger. They are set once, in init, to a bridge that
// forwards to the logger of the most recently created session that has one
// and discards until then (in practice the process has one logger tree),
// so in a process with several sessions (the demo, the hub) a paho line
// may carry another session's attributes. They are set in init, not by the
// first NewSession with a logger, because paho reads them unsynchronised:
// assigning them while another session's client runs is a data race.
// paho's ERROR and WARN lines go to slog's debug level: the session itself
// logs every connect failure and lost connection at warn, with the broker
// and the back-off, and paho's lines only repeat them from inside.
// CRITICAL stays an error. Nothing is formatted unless its level is
// enabled.
var pahoLogger atomic.Pointer[slog.Logger]

func init() {
	mqtt.ERROR = pahoBridge{level: slog.LevelDebug, name: "ERROR"}
	mqtt.CRITICAL = pahoBridge{level: slog.LevelError, name: "CRITICAL"}
	mqtt.WARN = pahoBridge{level: slog.LevelDebug, name: "WARN"}
	mqtt.DEBUG = pahoBridge{level: slog.LevelDebug, name: "DEBUG"}
}

// bridgePaho makes l (tagged component=paho) the destination of paho's
// log lines.
func bridgePaho(l *slog.Logger) {
	pahoLogger.Store(l.With("component", "paho"))
}

type pahoBridge struct {
	level slog.Level
	name  string
}

func (b pahoBridge) logger() *slog.Logger {
	l := pahoLogger.Load()
	if l == nil || !l.Enabled(context.Background(), b.level) {
		return nil
	}
	return l
}

func (b pahoBridge) Println(v ...any) {
	if l := b.logger(); l != nil {
		l.Log(context.Background(), b.level, strings.TrimSuffix(fmt.Sprintln(v...), "\n"), "paho_level", b.name)
	}
}

func (b pahoBridge) Printf(format string, v ...any) {
	if l := b.logger(); l != nil {
		l.Log(context.Background(), b.level, fmt.Sprintf(format, v...), "paho_level", b.name)
	}
}
