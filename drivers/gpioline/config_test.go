package gpioline

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
)

func TestInputConfig(t *testing.T) {
	for _, c := range []struct {
		pull  gpio.Pull
		edge  gpio.Edge
		flags uint64
	}{
		{gpio.PullNoChange, gpio.NoEdge, flagInput},
		{gpio.Float, gpio.RisingEdge, flagInput | flagBiasDisabled | flagEdgeRising},
		{gpio.PullDown, gpio.FallingEdge, flagInput | flagBiasPullDown | flagEdgeFalling},
		{gpio.PullUp, gpio.BothEdges, flagInput | flagBiasPullUp | flagEdgeRising | flagEdgeFalling},
	} {
		cfg, err := inputConfig(c.pull, c.edge, 0)
		if err != nil || cfg.flags != c.flags || cfg.numAttrs != 0 {
			t.Errorf("In(%s, %s): flags %#x attrs %d %v; want %#x", c.pull, c.edge, cfg.flags, cfg.numAttrs, err, c.flags)
		}
	}
	if _, err := inputConfig(gpio.Pull(42), gpio.NoEdge, 0); !errors.Is(err, ErrOptions) {
		t.Errorf("unknown pull: %v", err)
	}
	if _, err := inputConfig(gpio.PullUp, gpio.Edge(42), 0); !errors.Is(err, ErrOptions) {
		t.Errorf("unknown edge: %v", err)
	}
}

func TestInputConfigDebounce(t *testing.T) {
	cfg, err := inputConfig(gpio.PullUp, gpio.BothEdges, 5*time.Millisecond+999*time.Nanosecond)
	if err != nil || cfg.numAttrs != 1 {
		t.Fatalf("%+v %v", cfg, err)
	}
	a := cfg.attrs[0]
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], a.attr.value)
	if a.attr.id != attrDebounce || a.mask != 1 || binary.NativeEndian.Uint32(b[:4]) != 5000 {
		t.Errorf("debounce attribute %+v; want id %d, mask 1, 5000 µs in the union's first 4 bytes", a, attrDebounce)
	}
	if cfg, _ := inputConfig(gpio.PullUp, gpio.BothEdges, 999*time.Nanosecond); cfg.numAttrs != 0 {
		t.Errorf("sub-microsecond debounce gave %d attributes, want none", cfg.numAttrs)
	}
}

func TestOutputConfig(t *testing.T) {
	for _, lv := range []gpio.Level{gpio.Low, gpio.High} {
		cfg := outputConfig(lv)
		a := cfg.attrs[0]
		if cfg.flags != flagOutput || cfg.numAttrs != 1 || a.attr.id != attrOutputValues || a.mask != 1 || a.attr.value != levelBits(lv) {
			t.Errorf("Out(%s): %+v", lv, cfg)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil || o.Consumer != "kioskedge" || o.EventBuffer != 256 || o.Debounce != 0 {
		t.Fatalf("defaults %+v %v", o, err)
	}
	for _, bad := range []Options{
		{Consumer: "a-consumer-name-of-32-bytes-long"},
		{EventBuffer: -1},
		{EventBuffer: 1025},
		{Debounce: -time.Millisecond},
		{Debounce: 2 << 32 * time.Microsecond},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v, want ErrOptions", bad, err)
		}
	}
	if _, err := (Options{Consumer: "kioskd-gate-1", EventBuffer: 1024}).withDefaults(); err != nil {
		t.Errorf("valid options: %v", err)
	}
}
