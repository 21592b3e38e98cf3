package sscard

import (
	"context"
	"errors"
	"testing"
)

// fakeTransport stands in for another reader framing (sscard.md §1.5): the
// card logic and health work the same through any Transport.
type fakeTransport struct {
	present bool
	pErr    error               // returned by Present when set
	err     error               // returned by Transmit when set
	answer  func([]byte) []byte // the card
	off     int
}

func (f *fakeTransport) Present(context.Context) (bool, error) { return f.present, f.pErr }
func (f *fakeTransport) PowerOn(context.Context) ([]byte, error) {
	return []byte{0x3B, 0x00}, nil
}
func (f *fakeTransport) PowerOff(context.Context) error { f.off++; return nil }
func (f *fakeTransport) Transmit(_ context.Context, apdu []byte) ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.answer(apdu), nil
}

func TestNewWithTransport(t *testing.T) {
	ctx := context.Background()
	ft := &fakeTransport{}
	r, err := NewWithTransport(ft, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadCard(ctx); !errors.Is(err, ErrNoCard) || ft.off != 0 {
		t.Errorf("empty slot: %v, %d power offs", err, ft.off)
	}
	ft.present = true
	ft.answer = func([]byte) []byte { return []byte{0x6E, 0x00} }
	if _, err := r.ReadCard(ctx); !errors.Is(err, ErrWrongApplication) || ft.off != 1 {
		t.Errorf("6E00: %v, %d power offs", err, ft.off)
	}
	ft.err = ErrNoCard // the card left after power on
	if _, err := r.ReadCard(ctx); !errors.Is(err, ErrCardRemoved) || ft.off != 2 {
		t.Errorf("removed: %v, %d power offs", err, ft.off)
	}
	ft.pErr = ErrTimeout // the reader stops answering altogether
	for range 3 {
		if _, err := r.ReadCard(ctx); !errors.Is(err, ErrTimeout) {
			t.Errorf("timeout: %v", err)
		}
	}
	if h := r.Health(); !h.Down || h.Errors["timeout"] != 3 {
		t.Errorf("health %+v", h)
	}
	if _, err := NewWithTransport(nil, Options{}); err == nil {
		t.Error("nil transport accepted")
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}
