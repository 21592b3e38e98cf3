package gpioline

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Spec
	}{
		{"gpiochip0:17", Spec{Chip: "gpiochip0", Line: 17}},
		{"/dev/gpiochip2:0", Spec{Chip: "/dev/gpiochip2", Line: 0}},
		{"pinctrl-bcm2711:4", Spec{Chip: "pinctrl-bcm2711", Line: 4}},
		{"odd:label:3", Spec{Chip: "odd:label", Line: 3}}, // offset after the last colon
		{"name:DOOR_RELAY", Spec{Name: "DOOR_RELAY"}},
		{"name:with:colon", Spec{Name: "with:colon"}},
		{"name:17", Spec{Name: "17"}},
	} {
		got, err := ParseSpec(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if back, err := ParseSpec(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q does not parse back: %+v, %v", c.in, got.String(), back, err)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, c := range []struct {
		in, says string
	}{
		{"", "want chip:offset"},
		{"gpiochip0", "want chip:offset"},
		{"DOOR_RELAY", "name:LINE_NAME"},
		{"gpiochip0:DOOR_RELAY", "name:DOOR_RELAY"},
		{"gpiochip0:", "not a number"},
		{"gpiochip0:-1", "negative"},
		{"gpiochip0:99999999", "out of range"},
		{":3", "empty"},
		{"name:", "empty"},
	} {
		_, err := ParseSpec(c.in)
		if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseSpec(%q) = %v; want ErrSpec saying %q", c.in, err, c.says)
		}
	}
}

func TestSpecValidateBoth(t *testing.T) {
	if err := (Spec{Chip: "gpiochip0", Name: "X"}).Validate(); !errors.Is(err, ErrSpec) {
		t.Errorf("chip and name: %v", err)
	}
}

func TestSpecText(t *testing.T) {
	var s Spec
	if err := s.UnmarshalText([]byte("gpiochip1:5")); err != nil || s != (Spec{Chip: "gpiochip1", Line: 5}) {
		t.Fatalf("UnmarshalText: %+v %v", s, err)
	}
	if err := s.UnmarshalText([]byte("nonsense")); err == nil || s != (Spec{Chip: "gpiochip1", Line: 5}) {
		t.Fatalf("bad text: %+v %v (want an error and s unchanged)", s, err)
	}
	b, err := Spec{Name: "RTE"}.MarshalText()
	if err != nil || string(b) != "name:RTE" {
		t.Fatalf("MarshalText: %q %v", b, err)
	}
}
