// Package idcardvectors holds machine-readable test vectors for the
// resident ID-card reader protocol (firmware-specs/idcard.md): request
// frames (§3), response frames (§4), base-info responses with every decoded
// field (§5), and malformed frames and base-info blocks with the class of
// error a decoder must report (§7).
//
// The vectors were composed by gen_vectors.py, an independent computation
// from the spec text (XOR checksum, UCS-2 little-endian padding, ISO 7064
// MOD 11-2 check digit) that shares no code with drivers/idcard or
// testhw/idcardsim, so tests that check either against these vectors check
// it against the document. Regenerate with
//
//	python3 gen_vectors.py > idcard.json
//
// Every person in the vectors is fake: the name is "测试样例" or "样例乙" and
// the ID numbers use the non-existent region code 99. Tests must still treat
// the fields as personal data and never log them unmasked.
//
// Byte strings are lower-case hex. This package has no dependency on the
// codec it describes.
package idcardvectors
