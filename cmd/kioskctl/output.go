package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
)

// printJSON writes v as indented JSON on stdout.
func printJSON(e *env, v any) int {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(e.Stderr, "kioskctl: writing JSON:", err)
		return exitUnusable
	}
	return exitOK
}

// printJSONCode writes v as printJSON does and returns code, or
// printJSON's failure code when writing fails.
func printJSONCode(e *env, v any, code int) int {
	if c := printJSON(e, v); c != exitOK {
		return c
	}
	return code
}

// table writes rows under a header, columns aligned.
func table(e *env, header []string, rows [][]string) {
	w := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	// A tabwriter over a terminal or a buffer: a failed flush has nowhere
	// better to be reported than the output it failed to write.
	_ = w.Flush()
}

// fail prints a clear error ("kioskctl CMD: what went wrong; what to do")
// and returns code.
func fail(e *env, cmd string, code int, format string, args ...any) int {
	fmt.Fprintf(e.Stderr, "kioskctl %s: %s\n", cmd, fmt.Sprintf(format, args...))
	return code
}
