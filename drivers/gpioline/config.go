package gpioline

import (
	"encoding/binary"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Options tune how Open requests a line. The zero value is ready to use.
type Options struct {
	// Consumer labels the line in the kernel while it is held, as gpioinfo
	// shows it; at most 31 bytes. Empty means "kioskedge".
	Consumer string
	// EventBuffer is how many edge events the kernel keeps for the line
	// while nobody reads; beyond it events are lost and counted in
	// Stats.Dropped. 0 means 256; the kernel caps it at 1024.
	EventBuffer int
	// Debounce asks the kernel to debounce the line when it is an input
	// (hardware if the chip can, software otherwise; rounded down to
	// microseconds); 0 means none. Never use it on Wiegand data lines,
	// whose pulses last 20-100 µs.
	Debounce time.Duration
}

const (
	defaultConsumer    = "kioskedge"
	defaultEventBuffer = 256
)

// withDefaults returns o with its zero fields defaulted, or an error
// wrapping ErrOptions.
func (o Options) withDefaults() (Options, error) {
	if o.Consumer == "" {
		o.Consumer = defaultConsumer
	}
	if len(o.Consumer) >= gpioMaxNameSize {
		return o, fmt.Errorf("%w: consumer %q is longer than %d bytes", ErrOptions, o.Consumer, gpioMaxNameSize-1)
	}
	switch {
	case o.EventBuffer == 0:
		o.EventBuffer = defaultEventBuffer
	case o.EventBuffer < 0 || o.EventBuffer > maxEventBuffer:
		return o, fmt.Errorf("%w: event buffer %d outside 1 to %d", ErrOptions, o.EventBuffer, maxEventBuffer)
	}
	if o.Debounce < 0 || o.Debounce/time.Microsecond > 1<<32-1 {
		return o, fmt.Errorf("%w: debounce %v out of range", ErrOptions, o.Debounce)
	}
	return o, nil
}

// inputConfig is the line configuration for In(pull, edge). Every line
// request here holds one line, so attribute masks are bit 0.
func inputConfig(pull gpio.Pull, edge gpio.Edge, debounce time.Duration) (lineConfig, error) {
	c := lineConfig{flags: flagInput}
	switch pull {
	case gpio.PullNoChange:
	case gpio.Float:
		c.flags |= flagBiasDisabled
	case gpio.PullDown:
		c.flags |= flagBiasPullDown
	case gpio.PullUp:
		c.flags |= flagBiasPullUp
	default:
		return lineConfig{}, fmt.Errorf("%w: unknown pull %d", ErrOptions, pull)
	}
	switch edge {
	case gpio.NoEdge:
	case gpio.RisingEdge:
		c.flags |= flagEdgeRising
	case gpio.FallingEdge:
		c.flags |= flagEdgeFalling
	case gpio.BothEdges:
		c.flags |= flagEdgeRising | flagEdgeFalling
	default:
		return lineConfig{}, fmt.Errorf("%w: unknown edge %d", ErrOptions, edge)
	}
	if us := uint32(debounce / time.Microsecond); us > 0 {
		c.attrs[0] = lineConfigAttribute{attr: lineAttribute{id: attrDebounce, value: debounceValue(us)}, mask: 1}
		c.numAttrs = 1
	}
	return c, nil
}

// outputConfig is the line configuration for Out(l): the direction and
// the level in one ioctl, so the line never drives anything else.
func outputConfig(l gpio.Level) lineConfig {
	c := lineConfig{flags: flagOutput, numAttrs: 1}
	c.attrs[0] = lineConfigAttribute{attr: lineAttribute{id: attrOutputValues, value: levelBits(l)}, mask: 1}
	return c
}

func levelBits(l gpio.Level) uint64 {
	if l {
		return 1
	}
	return 0
}

// debounceValue places a u32 debounce_period_us where the kernel's union
// has it: in the first four bytes of the u64, in the machine's order.
func debounceValue(us uint32) uint64 {
	var b [8]byte
	binary.NativeEndian.PutUint32(b[:], us)
	return binary.NativeEndian.Uint64(b[:])
}
