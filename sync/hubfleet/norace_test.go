//go:build !race

package hubfleet

const raceEnabled = false
