#!/usr/bin/env python3
"""Allowlist test vectors (firmware-specs/allowlist.md), written from the
spec independently of agent/allowlist. Prints vectors.json."""
import datetime, hashlib, json


def uv(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def sv(v):  # zigzag
    return uv((v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1)


def hm(s):
    h, m = s.split(":")
    return int(h) * 60 + int(m)


def day(s):
    return (datetime.date.fromisoformat(s) - datetime.date(1970, 1, 1)).days


def entry_value(e):
    b = bytes([1, 1 if e["staff"] else 0])
    b += sv(e["valid_from"]) + sv(e["valid_to"]) + uv(e["schedule"])
    b += uv(len(e["door_groups"])) + b"".join(uv(g) for g in e["door_groups"])
    return b + uv(e["anti_passback"])


def schedule(s):
    b = uv(s["id"]) + uv(len(s["windows"]))
    for w in s["windows"]:
        b += bytes([sum(1 << d for d in w["days"])]) + uv(hm(w["from"])) + uv(hm(w["to"]))
    return b + uv(len(s["holidays"])) + b"".join(uv(day(h)) for h in s["holidays"])


def chunk(schedules, entries):
    recs = [bytes([2]) + uv(len(x)) + x for x in map(schedule, schedules)]
    for e in entries:
        body = bytes.fromhex(e["key"]) + entry_value(e)
        recs.append(bytes([1]) + uv(len(body)) + body)
    return b"KAC1" + uv(len(recs)) + b"".join(recs)


entries = [
    dict(name="minimal", key="00" * 16, valid_from=0, valid_to=0, door_groups=[], schedule=0, staff=False, anti_passback=0),
    dict(name="resident", key="0f" * 16, valid_from=1767196800, valid_to=1798732800, door_groups=[1, 2],
         schedule=1, staff=False, anti_passback=0),
    dict(name="staff with anti-passback", key="7f" + "00" * 15, valid_from=1700000000, valid_to=0,
         door_groups=[1, 300, 70000], schedule=0, staff=True, anti_passback=5),
    dict(name="before 1970", key="a0" * 16, valid_from=-86400, valid_to=1, door_groups=[4294967295],
         schedule=4294967295, staff=False, anti_passback=4294967295),
]
for e in entries:
    e["value"] = entry_value(e).hex()

schedules = [
    dict(name="weekdays 07:00-19:00 with two holidays", id=1,
         windows=[dict(days=[1, 2, 3, 4, 5], **{"from": "07:00", "to": "19:00"})],
         holidays=["2026-01-01", "2026-01-02"]),
    dict(name="always", id=2, windows=[dict(days=[0, 1, 2, 3, 4, 5, 6], **{"from": "00:00", "to": "24:00"})], holidays=[]),
    dict(name="night over midnight as two windows", id=300,
         windows=[dict(days=[5, 6], **{"from": "22:00", "to": "24:00"}),
                  dict(days=[6, 0], **{"from": "00:00", "to": "06:30"})], holidays=[]),
]
for s in schedules:
    s["hex"] = schedule(s).hex()

c0 = chunk(schedules, entries[:2])
c1 = chunk([], entries[2:])
snapshot = dict(version=42, chunks=[c0.hex(), c1.hex()],
                sha256=hashlib.sha256(c0 + c1).hexdigest(), entries=[e["name"] for e in entries],
                schedules=[s["id"] for s in schedules])

malformed_entries = [
    dict(name="empty", hex=""),
    dict(name="format 2", hex="02000000000000"),
    dict(name="unknown flag", hex="01020000000000"),
    dict(name="truncated", hex="010000000000"),
    dict(name="trailing byte", hex="0100000000000000"),
    dict(name="door groups descending", hex="010000000002050300"),
    dict(name="65 door groups", hex="01000000004100"),
    dict(name="non-minimal varint", hex="0100000080000000"),
    dict(name="schedule above 32 bits", hex="0100000080808080100000"),
]
e1 = bytes.fromhex(entries[1]["key"]) + entry_value(entries[1])
e0 = bytes.fromhex(entries[0]["key"]) + entry_value(entries[0])
malformed_chunks = [
    dict(name="bad magic", hex=("KAC2".encode() + b"\x00").hex()),
    dict(name="truncated", hex=c0[:-1].hex()),
    dict(name="trailing byte", hex=(c0 + b"\x00").hex()),
    dict(name="record type 3", hex=(b"KAC1\x01\x03\x01\x00").hex()),
    dict(name="entry record shorter than a key", hex=(b"KAC1\x01\x01\x02\x00\x00").hex()),
    dict(name="keys descending", hex=(b"KAC1\x02" + b"\x01" + uv(len(e1)) + e1 + b"\x01" + uv(len(e0)) + e0).hex()),
    dict(name="duplicate key", hex=(b"KAC1\x02" + (b"\x01" + uv(len(e0)) + e0) * 2).hex()),
    dict(name="count above records", hex=(b"KAC1\x02" + b"\x01" + uv(len(e0)) + e0).hex()),
]

print(json.dumps(dict(entries=entries, schedules=schedules, snapshot=snapshot,
                      malformed_entries=malformed_entries, malformed_chunks=malformed_chunks), indent=1))
