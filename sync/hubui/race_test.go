//go:build race

package hubui_test

// raceEnabled: the race detector makes the 10,000-agent timing tests slow
// and their logged times meaningless, so they skip.
const raceEnabled = true
