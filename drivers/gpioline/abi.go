package gpioline

// The Linux GPIO character device ABI, version 2 (kernel >= 5.10), as
// declared in include/uapi/linux/gpio.h
// (https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/include/uapi/linux/gpio.h)
// and described in Documentation/userspace-api/gpio/chardev.rst. Only
// this file restates it; abi_test.go checks every size against the
// header's documented sizes.
//
// The kernel pads these structs explicitly so that they have one layout
// on 32- and 64-bit architectures; Go lays them out the same way (every
// uint64 already sits on an 8-byte offset), which the size test checks.
// The file holds types and numbers only, so it compiles on every GOOS; the
// ioctls themselves are issued in sys_linux.go.

const (
	gpioMaxNameSize = 32                // GPIO_MAX_NAME_SIZE
	gpioLinesMax    = 64                // GPIO_V2_LINES_MAX
	gpioNumAttrsMax = 10                // GPIO_V2_LINE_NUM_ATTRS_MAX
	maxEventBuffer  = gpioLinesMax * 16 // the kernel's cap on event_buffer_size
	eventSize       = 48                // sizeof(struct gpio_v2_line_event)
	lineRequestSize = 592
	lineConfigSize  = 272
	lineInfoSize    = 256
	lineValuesSize  = 16
	lineAttrSize    = 16
	lineCfgAttrSize = 24
	gpioIoctlMagic  = 0xB4
	iocWriteRead    = 3 // _IOC_READ|_IOC_WRITE on asm-generic; see ioctlWR
	iocSizeShift    = 16
	iocDirShift     = 30
	iocTypeShift    = 8
)

// enum gpio_v2_line_flag
// (the flags not used here: USED 1<<0, ACTIVE_LOW 1<<1, OPEN_DRAIN 1<<6,
// OPEN_SOURCE 1<<7, EVENT_CLOCK_REALTIME 1<<11 — see doc.go for why not —
// and EVENT_CLOCK_HTE 1<<12).
const (
	flagInput        uint64 = 1 << 2
	flagOutput       uint64 = 1 << 3
	flagEdgeRising   uint64 = 1 << 4
	flagEdgeFalling  uint64 = 1 << 5
	flagBiasPullUp   uint64 = 1 << 8
	flagBiasPullDown uint64 = 1 << 9
	flagBiasDisabled uint64 = 1 << 10
)

// enum gpio_v2_line_attr_id
const (
	attrFlags        uint32 = 1
	attrOutputValues uint32 = 2
	attrDebounce     uint32 = 3
)

// enum gpio_v2_line_event_id
const (
	eventRisingEdge  uint32 = 1
	eventFallingEdge uint32 = 2
)

// struct gpio_v2_line_attribute. The kernel's union of flags, values and
// debounce_period_us is value: a u64, of which debounce uses the low 32
// bits (little-endian) or the high 32 bits (big-endian), see setDebounce.
type lineAttribute struct {
	id      uint32
	padding uint32
	value   uint64
}

// struct gpio_v2_line_config_attribute
type lineConfigAttribute struct {
	attr lineAttribute
	mask uint64
}

// struct gpio_v2_line_config
type lineConfig struct {
	flags    uint64
	numAttrs uint32
	padding  [5]uint32
	attrs    [gpioNumAttrsMax]lineConfigAttribute
}

// struct gpio_v2_line_request
type lineRequest struct {
	offsets         [gpioLinesMax]uint32
	consumer        [gpioMaxNameSize]byte
	config          lineConfig
	numLines        uint32
	eventBufferSize uint32
	padding         [5]uint32
	fd              int32
}

// struct gpio_v2_line_values
type lineValues struct {
	bits uint64
	mask uint64
}

// struct gpio_v2_line_info
type lineInfo struct {
	name     [gpioMaxNameSize]byte
	consumer [gpioMaxNameSize]byte
	offset   uint32
	numAttrs uint32
	flags    uint64
	attrs    [gpioNumAttrsMax]lineAttribute
	padding  [4]uint32
}

// struct gpio_v2_line_event is decoded from bytes (event.go), not through
// a Go struct: its fields are timestamp_ns u64 @0, id u32 @8, offset u32
// @12, seqno u32 @16, line_seqno u32 @20, padding [6]u32 @24; 48 bytes.

// ioctlWR is _IOWR(0xB4, nr, size). Every ioctl used here is _IOWR, and
// for _IOWR the architectures with a different _IOC layout (mips, powerpc,
// sparc: 3 direction bits at 29, READ=2, WRITE=4) encode the same number
// as asm-generic (2 bits at 30, READ=2, WRITE=1): 6<<29 == 3<<30, and the
// sizes fit in 13 bits. So one encoding serves every GOARCH.
func ioctlWR(nr, size uintptr) uintptr {
	return iocWriteRead<<iocDirShift | size<<iocSizeShift | gpioIoctlMagic<<iocTypeShift | nr
}

var (
	ioctlGetLineInfo   = ioctlWR(0x05, lineInfoSize)    // GPIO_V2_GET_LINEINFO_IOCTL
	ioctlGetLine       = ioctlWR(0x07, lineRequestSize) // GPIO_V2_GET_LINE_IOCTL
	ioctlLineSetConfig = ioctlWR(0x0D, lineConfigSize)  // GPIO_V2_LINE_SET_CONFIG_IOCTL
	ioctlLineGetValues = ioctlWR(0x0E, lineValuesSize)  // GPIO_V2_LINE_GET_VALUES_IOCTL
	ioctlLineSetValues = ioctlWR(0x0F, lineValuesSize)  // GPIO_V2_LINE_SET_VALUES_IOCTL
)
