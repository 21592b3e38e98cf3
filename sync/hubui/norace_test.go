//go:build !race

package hubui_test

const raceEnabled = false
