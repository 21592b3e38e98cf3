#!/usr/bin/env python3
"""Wiegand vectors for firmware-specs/wiegand.md, written from the spec
independently of drivers/wiegand and testhw/gpiosim."""
import json

def bits(v, n):
    return [(v >> (n - 1 - i)) & 1 for i in range(n)]

def frame(fc, fcn, card, cardn, even_hi, odd_lo):
    data = bits(fc, fcn) + bits(card, cardn)
    f = [0] + data + [0]
    n = len(f)
    f[0] = sum(f[1:even_hi + 1]) % 2            # even over 0..even_hi
    f[-1] = 1 - sum(f[odd_lo:n - 1]) % 2        # odd over odd_lo..n-1
    return f

def s(f):
    return "".join(map(str, f))

good, bad = [], []
for fc, card in [(0, 0), (1, 1), (123, 4567), (255, 65535), (18, 12345), (200, 1)]:
    good.append(dict(name=f"H10301 {fc}/{card}", bits=s(frame(fc, 8, card, 16, 12, 13)),
                     encoding="H10301", facility=fc, card=card, number=f"{fc:03d}-{card:05d}"))
for fc, card in [(0, 0), (123, 4567), (65535, 65535), (4660, 22136)]:
    good.append(dict(name=f"34bit {fc}/{card}", bits=s(frame(fc, 16, card, 16, 16, 17)),
                     encoding="34bit", facility=fc, card=card, number=f"{fc:05d}-{card:05d}"))
# (0, 131072): the only 1 data bit is frame bit 18, which both parity ranges
# cover (HID 1-based: even over 2-19, odd over 19-36), so both parity bits
# depend on it: 1 0000000000000000 0100000000000000000 0.
for fc, card in [(0, 0), (123, 45678), (65535, 524287), (1, 262144), (0, 131072)]:
    good.append(dict(name=f"H10304 {fc}/{card}", bits=s(frame(fc, 16, card, 19, 18, 18)),
                     encoding="H10304", facility=fc, card=card, number=f"{fc:05d}-{card:06d}"))

def flip(b, i):
    l = list(b); l[i] = "1" if l[i] == "0" else "0"; return "".join(l)

h = frame(123, 8, 4567, 16, 12, 13)
bad.append(dict(name="H10301 even parity bit flipped", bits=flip(s(h), 0), reason="parity"))
bad.append(dict(name="H10301 odd parity bit flipped", bits=flip(s(h), 25), reason="parity"))
bad.append(dict(name="H10301 facility bit flipped", bits=flip(s(h), 3), reason="parity"))
bad.append(dict(name="H10301 card bit flipped", bits=flip(s(h), 20), reason="parity"))
b34 = s(frame(123, 16, 4567, 16, 16, 17))
bad.append(dict(name="34bit data bit flipped", bits=flip(b34, 10), reason="parity"))
b37 = s(frame(123, 16, 45678, 19, 18, 18))
bad.append(dict(name="H10304 shared bit 18 flipped", bits=flip(b37, 18), reason="parity"))
bad.append(dict(name="H10304 card bit flipped", bits=flip(b37, 30), reason="parity"))
# The same frame with odd parity over 19..35, leaving out the shared bit 18:
# a decoder with disjoint ranges would accept it.
d37 = frame(0, 16, 131072, 19, 18, 19)
bad.append(dict(name="H10304 odd parity without the shared bit 18", bits=s(d37), reason="parity"))
bad.append(dict(name="H10301 truncated to 20 bits", bits=s(h)[:20], reason="too short"))
bad.append(dict(name="single bit", bits="1", reason="too short"))
bad.append(dict(name="129 bits", bits="10" * 64 + "1", reason="too long"))

raw = []
r27 = "101101000111111000011000001"
raw.append(dict(name="27-bit raw", bits=r27, number="27:" + format(int(r27, 2), "X").rjust(7, "0")))
r32 = "0" * 8 + "1" * 24
raw.append(dict(name="32-bit raw", bits=r32, number="32:" + format(int(r32, 2), "X").rjust(8, "0")))

print(json.dumps(dict(good=good, bad=bad, raw=raw), indent=1))
