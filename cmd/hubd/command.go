package main

import (
	"errors"
	"io"
)

// commandCmd runs "hubd cmd ..." (being built; see issue 3).
func commandCmd(args []string, stderr io.Writer) error {
	return errors.New("cmd: not built yet")
}
