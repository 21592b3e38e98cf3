package broker

import (
	"errors"
	"os"
	"testing"
)

// skipMessage is what a test says when mosquitto is missing outside CI.
const skipMessage = "mosquitto not installed: apt-get install -y mosquitto " +
	"(CI installs it; this test is skipped only outside CI)"

// Each runs fn as the subtests "mochi" and "mosquitto", each with a fresh
// broker on a free loopback port that t.Cleanup closes. When the mosquitto
// binary is missing, the "mosquitto" subtest fails under CI (CI set in the
// environment) and is skipped loudly elsewhere. fn may call t.Parallel.
func Each(t *testing.T, fn func(t *testing.T, b *Broker)) {
	t.Helper()
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			fn(t, ForTest(t, Options{Kind: k}))
		})
	}
}

// ForTest starts a broker for t and closes it in t.Cleanup. A missing
// mosquitto binary fails t under CI and skips it loudly elsewhere; any
// other start error fails t.
func ForTest(t testing.TB, opts Options) *Broker {
	t.Helper()
	b, err := Start(opts)
	if errors.Is(err, ErrMosquittoNotFound) {
		if os.Getenv("CI") != "" {
			t.Fatalf("broker: %v; CI must install it: apt-get install -y mosquitto", err)
		}
		t.Skip("\n\n*** SKIPPED: " + skipMessage + " ***\n")
	}
	if err != nil {
		t.Fatalf("broker: start %s: %v", opts.Kind, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("broker: close %s: %v", b.Kind(), err)
		}
	})
	return b
}
