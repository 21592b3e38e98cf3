package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestRunRejectsBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "-broker is required"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "extra"}, "unexpected arguments"},
		{[]string{"-nosuch"}, "flag provided but not defined"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-log-level", "loud"}, "-log-level"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", t.TempDir() + "/h.db", "-http", ""}, "plaintext"},
	} {
		var stderr bytes.Buffer
		err := run(tt.args, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.want) {
			t.Errorf("run(%q) = %v (stderr %q), want %q", tt.args, err, stderr.String(), tt.want)
		}
	}
	if err := run([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
