// Package osdpsim simulates OSDP v2.2 peripheral devices (PDs) on one
// RS-485 bus, speaking the device side of firmware-specs/osdp.md over an
// io.ReadWriter (the simulator end of a testhw/pty pair).
//
// It is an independent implementation of the spec: it does not import
// drivers/osdp, so driver tests check the driver against a second reading
// of the spec (and both against firmware-specs/osdpvectors).
//
// A [Bus] holds one or more [PD]s at their addresses and answers commands
// in [Bus.Serve]; a bus with one PD also answers the configuration address
// 0x7F (with the PD's own address), as a commissioning tool's probe expects.
// Tests drive a PD like a person at the door ([PD.Swipe],
// [PD.SwipeFormatted], [PD.Keys], [PD.SetTamper]), read what the control
// panel made it do ([PD.LED], [PD.Buzzer], [PD.Text], [PD.Key],
// [PD.Secure]) and inject faults ([PD.Inject] for one reply: garbage before
// it, a truncated copy before it, a bad CRC instead of it, a NAK, BUSY;
// [PD.SetSilent] for a reader that stops answering).
package osdpsim
