package gpioline

import (
	"testing"
	"unsafe"
)

// The sizes and offsets include/uapi/linux/gpio.h documents (its structs
// are laid out identically on every architecture).
func TestABISizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"gpio_v2_line_attribute", unsafe.Sizeof(lineAttribute{}), 16},
		{"gpio_v2_line_config_attribute", unsafe.Sizeof(lineConfigAttribute{}), 24},
		{"gpio_v2_line_config", unsafe.Sizeof(lineConfig{}), 272},
		{"gpio_v2_line_request", unsafe.Sizeof(lineRequest{}), 592},
		{"gpio_v2_line_values", unsafe.Sizeof(lineValues{}), 16},
		{"gpio_v2_line_info", unsafe.Sizeof(lineInfo{}), 256},
		{"the constants agree: attribute", lineAttrSize, 16},
		{"the constants agree: config attribute", lineCfgAttrSize, 24},
		{"the constants agree: config", lineConfigSize, 272},
		{"the constants agree: request", lineRequestSize, 592},
		{"the constants agree: values", lineValuesSize, 16},
		{"the constants agree: info", lineInfoSize, 256},
		{"gpio_v2_line_event", eventSize, 48},
		{"gpio_v2_line_config.attrs offset", unsafe.Offsetof(lineConfig{}.attrs), 32},
		{"gpio_v2_line_request.config offset", unsafe.Offsetof(lineRequest{}.config), 288},
		{"gpio_v2_line_request.num_lines offset", unsafe.Offsetof(lineRequest{}.numLines), 560},
		{"gpio_v2_line_request.fd offset", unsafe.Offsetof(lineRequest{}.fd), 588},
		{"gpio_v2_line_info.flags offset", unsafe.Offsetof(lineInfo{}.flags), 72},
		{"gpio_v2_line_info.attrs offset", unsafe.Offsetof(lineInfo{}.attrs), 80},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, the kernel's is %d", c.name, c.got, c.want)
		}
	}
}

// The ioctl numbers as the kernel headers expand them (and as strace
// prints them).
func TestIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"GPIO_V2_GET_LINEINFO_IOCTL", ioctlGetLineInfo, 0xC100B405},
		{"GPIO_V2_GET_LINE_IOCTL", ioctlGetLine, 0xC250B407},
		{"GPIO_V2_LINE_SET_CONFIG_IOCTL", ioctlLineSetConfig, 0xC110B40D},
		{"GPIO_V2_LINE_GET_VALUES_IOCTL", ioctlLineGetValues, 0xC010B40E},
		{"GPIO_V2_LINE_SET_VALUES_IOCTL", ioctlLineSetValues, 0xC010B40F},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}
