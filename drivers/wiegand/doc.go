// Package wiegand reads Wiegand card readers: a pure Decoder that turns
// timestamped D0/D1 pulses into frames, and a Reader that waits for edges
// on two gpio.PinIn and feeds it.
//
// The wire format, timing, framing by inter-bit gap and the bad-frame
// reasons are in firmware-specs/wiegand.md. A frame has a Status: Good
// frames (H10301, 34-bit, H10304 with parity holding and regular timing,
// or a raw frame of a configured length) carry a credential.Credential; Raw
// frames (another length) and Bad frames (a Reason: parity, too short, too
// long, both lines low, irregular timing, trailing bits) are reported and
// counted but never yield a credential, so the access engine cannot grant
// on them.
//
// Frames end by an inter-bit gap (Config.Gap, 25 ms). A site whose cards
// all have one length sets Config.CompleteAt to it: a regular, glitch-free
// frame that decodes good is then delivered at its last bit, by the
// Reader's watcher goroutine that saw that bit's last edge, with no timer
// in between (wiegand.md §3.1–3.3).
package wiegand
