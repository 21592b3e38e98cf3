// Package wiegandvectors holds the Wiegand test vectors of
// firmware-specs/wiegand.md as embedded JSON: good 26/34/37-bit frames with
// their facility, card and number; bad frames with the reason a decoder
// must report; raw frames with their number.
//
// The vectors were computed by gen/gen_vectors.py, written from the spec
// independently of drivers/wiegand and testhw/gpiosim, and spot-checked by
// hand (H10301 1/1 is 1 00000001 0000000000000001 0). Regenerate with
//
//	python3 firmware-specs/wiegandvectors/gen/gen_vectors.py > firmware-specs/wiegandvectors/vectors.json
package wiegandvectors
