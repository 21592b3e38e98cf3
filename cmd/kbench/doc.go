// Command kbench runs KioskEdge's benchmark suites and prints each figure
// next to a baseline measured in the same run, so results compare across
// machines and runs (DESIGN.md §10, issue 2 part 8).
//
// Usage:
//
//	go run ./cmd/kbench [-suite outbox|sync|all] [-json] [-quick] [-n records] [-cold] [-dir path]
//
// Each suite returns rows of (suite, name, value, unit, baseline, ratio),
// where ratio = value / baseline. With -json, stdout carries one JSON
// object per row and line; progress goes to stderr either way.
//
// Suites are the explicit list in suites(); adding one means writing a
// function of type suiteFunc and adding a line there.
package main
