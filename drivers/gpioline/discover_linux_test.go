package gpioline

import "testing"

func TestKernelName(t *testing.T) {
	for _, c := range []struct{ chip, periph, want string }{
		{"gpiochip0", "GPIO17", "GPIO17"},
		{"gpiochip1", "gpiochip1-2712_WAKE", "2712_WAKE"}, // periph's rename of a duplicate
		{"gpiochip1", "gpiochip0-X", "gpiochip0-X"},       // another chip's prefix is a real name
		{"gpiochip0", "", ""},
	} {
		if got := kernelName(c.chip, c.periph); got != c.want {
			t.Errorf("kernelName(%q, %q) = %q, want %q", c.chip, c.periph, got, c.want)
		}
	}
}
