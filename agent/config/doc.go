// Package config loads and validates the agent's TOML configuration file
// (DESIGN.md §8). Loading is strict: an unknown key, a wrong type, a missing
// required key or a value out of range is an error naming the key, and the
// agent refuses to start rather than guess. Every problem in the file is
// reported at once, not just the first.
//
// Devices are [[device]] entries (see Device and examples/kioskd.toml):
// a name, a kind, a serial path, and the sub-table of that kind. Problems
// in them name the entry by its position counted from 0, e.g.
// `device[2].kind: "foo" is not one of idcard, …`.
package config
