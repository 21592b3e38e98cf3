package outbox

import (
	"path/filepath"
	"testing"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
)

func openT(t testing.TB, dir string, budget int64) *Outbox {
	t.Helper()
	o, err := Open(Options{Path: filepath.Join(dir, "outbox.db"), BudgetBytes: budget})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return o
}

func TestContract(t *testing.T) {
	outboxtest.Run(t, func(t testing.TB, dir string, budget int64) outboxtest.Store {
		return openT(t, dir, budget)
	})
}
