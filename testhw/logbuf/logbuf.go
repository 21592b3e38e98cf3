// Package logbuf is a goroutine-safe buffer for capturing what a logger
// writes in tests, so a test can check, for example, that no personal data
// reached a log line.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes from any number of goroutines. The zero value is
// ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
