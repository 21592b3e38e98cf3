// Package uplinktest runs real uplinks in tests of the packages around
// them (the hub, hubd's scale-out): an agent's store-and-forward path
// against a test broker.
package uplinktest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/uplink"
)

// Agent is a box's store-and-forward path for a test: it opens an outbox
// in a temporary directory (closed when the test ends), lets fill append
// to it, and drains it with an uplink built from opts (its BdSeqPath in
// the same directory) until the test ends.
func Agent(t testing.TB, opts uplink.Options, fill func(*outbox.Outbox)) (*outbox.Outbox, *uplink.Uplink) {
	t.Helper()
	dir := t.TempDir()
	ob, err := outbox.Open(outbox.Options{Path: filepath.Join(dir, "outbox.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ob.Close(); err != nil {
			t.Error(err)
		}
	})
	if fill != nil {
		fill(ob)
	}
	opts.BdSeqPath = filepath.Join(dir, "bdseq")
	return ob, Run(t, opts, ob)
}

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
