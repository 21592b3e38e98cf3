// Package hubalerttest holds the contract every hubalert.StateStore
// passes (the file store here, the PostgreSQL one in sync/hubpg) and a
// small in-memory store for tests of what uses one.
package hubalerttest

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/kioskedge/kioskedge/sync/hubalert"
)

// StateStoreContract checks a fresh, empty store from open, and a second
// store open returns on the same place (another hub instance, a
// restart): nothing saved loads as nil; a save replaces the whole
// document and every store on the place loads the last one, byte for
// byte; an empty document is not confused with none.
func StateStoreContract(t *testing.T, open func(t *testing.T) (first, second hubalert.StateStore)) {
	t.Helper()
	a, b := open(t)
	load := func(st hubalert.StateStore, who string) []byte {
		t.Helper()
		doc, err := st.Load()
		if err != nil {
			t.Fatalf("%s: load: %v", who, err)
		}
		return doc
	}
	if doc := load(a, "first"); doc != nil {
		t.Fatalf("fresh store loads %q, want nil", doc)
	}
	docs := [][]byte{
		[]byte(`{"version":1,"conds":{"offline/a1":{}}}`),
		bytes.Repeat([]byte("x"), 300_000), // bigger than one page or packet
		[]byte(`{"version":1}`),
	}
	for i, doc := range docs {
		by := a
		if i%2 == 1 {
			by = b
		}
		if err := by.Save(doc); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		for _, st := range []struct {
			s   hubalert.StateStore
			who string
		}{{a, "first"}, {b, "second"}} {
			if got := load(st.s, st.who); !bytes.Equal(got, doc) {
				t.Fatalf("after save %d, %s loads %d bytes, want %d", i, st.who, len(got), len(doc))
			}
		}
	}
}

// ErrSave is what Mem's Save returns while FailSaves is set.
var ErrSave = errors.New("hubalerttest: save refused")

// Mem is an in-memory hubalert.StateStore shared by whoever holds it.
// The zero value is an empty store; it is safe for concurrent use.
type Mem struct {
	mu    sync.Mutex
	doc   []byte
	saves int
	fail  bool
}

// Load returns a copy of the last saved document (nil if none).
func (m *Mem) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.doc), nil
}

// Save keeps a copy of doc, or returns ErrSave while FailSaves(true).
func (m *Mem) Save(doc []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return ErrSave
	}
	m.doc = bytes.Clone(doc)
	if m.doc == nil {
		m.doc = []byte{}
	}
	m.saves++
	return nil
}

// Saves returns how many saves succeeded.
func (m *Mem) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

// FailSaves makes every later Save fail (true) or succeed (false).
func (m *Mem) FailSaves(fail bool) {
	m.mu.Lock()
	m.fail = fail
	m.mu.Unlock()
}
