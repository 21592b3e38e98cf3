package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// paho logs through four package-level variables (mqtt.ERROR, CRITICAL,
// WARN, DEBUG) shared by every client in the process, so they cannot carry
// a per-session logger. They are set once, here, to a bridge that forwards
// to the logger of the most recently created session that has one (in
// practice the process has one logger tree), so in a process with several
// sessions (the demo, the hub) a paho line may carry another session's
// attributes. That is one reason paho's ERROR and WARN lines go to slog's
// debug level: the session itself logs every connect failure and lost
// connection at warn, with the broker and the back-off, and paho's lines
// only repeat them from inside. CRITICAL stays an error. Nothing is
// formatted unless its level is enabled.
var (
	pahoOnce   sync.Once
	pahoLogger atomic.Pointer[slog.Logger]
)

func bridgePaho(l *slog.Logger) {
	pahoLogger.Store(l.With("component", "paho"))
	pahoOnce.Do(func() {
		mqtt.ERROR = pahoBridge{level: slog.LevelDebug, name: "ERROR"}
		mqtt.CRITICAL = pahoBridge{level: slog.LevelError, name: "CRITICAL"}
		mqtt.WARN = pahoBridge{level: slog.LevelDebug, name: "WARN"}
		mqtt.DEBUG = pahoBridge{level: slog.LevelDebug, name: "DEBUG"}
	})
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
