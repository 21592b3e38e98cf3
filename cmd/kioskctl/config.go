package main

import (
	"context"
	"errors"
	"flag"
	"strings"

	"github.com/kioskedge/kioskedge/agent/config"
)

func configFlags() *flag.FlagSet {
	return flag.NewFlagSet("kioskctl config check", flag.ContinueOnError)
}

// runConfig runs "config check [FILE]": it validates the file (default
// --config) exactly as kioskd would at start and names every problem with
// its key. Exit 0 when valid, 1 with problems, 3 when unreadable.
func runConfig(_ context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] != "check" {
		return fail(e, "config", exitUsage, "want: kioskctl config check [FILE]")
	}
	fs := configFlags()
	if code, ok := parseFlags(e, fs, args[1:]); !ok {
		return code
	}
	path := e.Config
	switch fs.NArg() {
	case 0:
	case 1:
		path = fs.Arg(0)
	default:
		return fail(e, "config check", exitUsage, "one file at most, got %q", fs.Args())
	}
	type problem struct {
		Key     string `json:"key"`
		Problem string `json:"problem"`
	}
	result := struct {
		File     string    `json:"file"`
		Valid    bool      `json:"valid"`
		Problems []problem `json:"problems"`
	}{File: path, Problems: []problem{}}
	_, err := config.Load(path)
	if err != nil && !errors.Is(err, config.ErrInvalid) {
		return fail(e, "config check", exitUnusable, "%v (is the path right? the default is /etc/kioskedge/kioskd.toml)", err)
	}
	if err != nil {
		// config.Load lists one problem per line, "key: what is wrong".
		msg := strings.TrimPrefix(err.Error(), config.ErrInvalid.Error())
		for _, line := range strings.Split(msg, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(line, ":"))
			if line == "" {
				continue
			}
			key, what, ok := strings.Cut(line, ": ")
			if !ok || strings.ContainsAny(key, " \t") {
				key, what = "", line // a TOML syntax error names its own line
			}
			result.Problems = append(result.Problems, problem{Key: key, Problem: what})
		}
	}
	result.Valid = len(result.Problems) == 0
	code := exitOK
	if !result.Valid {
		code = exitFailed
	}
	if e.JSON {
		return printJSONCode(e, result, code)
	}
	if result.Valid {
		table(e, []string{"FILE", "RESULT"}, [][]string{{path, "ok"}})
		return code
	}
	var rows [][]string
	for _, p := range result.Problems {
		rows = append(rows, []string{p.Key, p.Problem})
	}
	table(e, []string{"KEY", "PROBLEM"}, rows)
	return code
}
