// Package wiegand reads Wiegand card readers: a pure Decoder that turns
// timestamped D0/D1 pulses into frames, and a Reader that waits for edges
// on two gpio.PinIn and feeds it.
//
// The wire format, timing, framing by inter-bit gap and the bad-frame
// reasons are in firmware-specs/wiegand.md. A frame has a Status: Good
// frames (H10301, 34-bit, H10304 with parity holding, or a raw frame of a
// configured length) carry a credential.Credential; Raw frames (another
// length) and Bad frames (a Reason: parity, too short, too long, both lines
// low) are reported and counted but never yield a credential, so the access
// engine cannot grant on them.
package wiegand
