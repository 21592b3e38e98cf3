package main

import (
	"errors"
	"io"
)

// allowlistCmd runs "hubd allowlist ..." (being built; see issue 3).
func allowlistCmd(args []string, stderr io.Writer) error {
	return errors.New("allowlist: not built yet")
}
