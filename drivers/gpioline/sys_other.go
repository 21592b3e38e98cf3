//go:build !linux

package gpioline

import (
	"fmt"
	"runtime"
)

func openLine(spec Spec, _ Options) (*Line, error) {
	return nil, fmt.Errorf("%w (this is %s): cannot open %s", ErrUnsupported, runtime.GOOS, spec)
}
