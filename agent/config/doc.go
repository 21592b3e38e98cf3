// Package config loads and validates the agent's TOML configuration file
// (DESIGN.md §8). Loading is strict: an unknown key, a wrong type, a missing
// required key or a value out of range is an error naming the key, and the
// agent refuses to start rather than guess. Every problem in the file is
// reported at once, not just the first.
package config
