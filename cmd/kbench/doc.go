// Command kbench runs KioskEdge's benchmark suites and prints each figure
// next to a baseline measured in the same run, so results compare across
// machines and runs (DESIGN.md §10, issue 2 part 8).
//
// Usage:
//
//	go run ./cmd/kbench [-suite outbox|sync|kiosk|gate|footprint|fleet|all] [-json] [-quick] [-n records] [-cold] [-dir path]
//	                    [-cpuprofile file] [-trace file]
//
// Each suite returns rows of (suite, name, value, unit, baseline, ratio),
// where ratio = value / baseline. With -json, stdout carries one JSON
// object per row and line; progress goes to stderr either way.
//
// The gate suite (gate.go) runs a smart gate with a 1,000,000-entry
// allowlist through the real wiring over simulated hardware and reports
// the latency from a Wiegand frame's last edge to the relay, against the
// frame's own wire time, and the allowlist's lookup, snapshot and delta
// times (100,000 entries and 1,000 swipes with -quick).
//
// -cpuprofile and -trace cover the whole run (go tool pprof, go tool
// trace); run one suite to see where its time goes.
//
// Suites are the explicit list in suites(); adding one means writing a
// function of type suiteFunc and adding a line there.
package main
