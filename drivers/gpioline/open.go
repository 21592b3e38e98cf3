package gpioline

// Open requests the line spec addresses from the kernel and holds it
// until Close, leaving it as it is (direction, level, bias) until In or
// Out configures it; so a relay line is not touched by Open. Chips are
// found through periph's gpioioctl driver the first time Open runs.
//
// It returns an error wrapping ErrSpec or ErrOptions for a bad argument;
// ErrNoChips when the machine shows no usable GPIO chip (none present, or
// none this user may open: the message says which and what to do);
// ErrNotFound or ErrAmbiguous when no line, or more than one, matches
// (the message lists what there is); ErrPermission when the chip's device
// node cannot be opened; ErrBusy when another program or a kernel driver
// holds the line (the message names it); ErrUnsupported on an operating
// system other than Linux.
func Open(spec Spec, opts Options) (*Line, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return openLine(spec, opts)
}
