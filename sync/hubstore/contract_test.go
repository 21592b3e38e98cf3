package hubstore_test

import (
	"path/filepath"
	"testing"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/hubstore/hubstoretest"
)

func TestContract(t *testing.T) {
	hubstoretest.Run(t, func(t *testing.T) func() hubstoretest.Store {
		path := filepath.Join(t.TempDir(), "hub.db")
		return func() hubstoretest.Store {
			s, err := hubstore.Open(path, hubstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
