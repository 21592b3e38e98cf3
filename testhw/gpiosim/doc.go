// Package gpiosim simulates GPIO lines for tests: a Line implements
// periph's gpio.PinIO, records every level change as a timestamped Edge,
// and queues the edges its input edge detection selects so that
// WaitForEdge returns them one by one, in order, each with the time it
// happened (like the Linux GPIO character device, which timestamps events
// in the kernel). The test side drives a line with Set or SetAt.
//
// The package also holds a Wiegand transmitter (Schedule, Transmit) that
// clocks real frames onto two lines, written from firmware-specs/wiegand.md
// and independent of drivers/wiegand, and builders for the H10301, 34-bit
// and H10304 frames.
//
// A Line owns no goroutine; WaitForEdge blocks only its caller.
package gpiosim
