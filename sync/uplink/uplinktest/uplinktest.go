// Package uplinktest runs real uplinks in tests of the packages around
// them (the hub, hubd's scale-out): an agent's store-and-forward path
// against a test broker.
package uplinktest

import (
	"context"
	"testing"

	"github.com/kioskedge/kioskedge/sync/uplink"
)

// Run builds an uplink from opts over src and runs it until the test
// ends; the cleanup stops it and fails the test if Run returned an error.
// A source the test closes must have its cleanup registered before Run,
// so it runs after the uplink stopped.
func Run(t testing.TB, opts uplink.Options, src uplink.Source) *uplink.Uplink {
	t.Helper()
	u, err := uplink.New(opts, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("uplink %s: %v", opts.Agent, err)
		}
	})
	return u
}
