#!/usr/bin/env python3
"""Composes idcard.json from firmware-specs/idcard.md by hand-written rules.

This is an independent computation of the vectors: it shares no code with
drivers/idcard or testhw/idcardsim. Run: python3 gen_vectors.py > idcard.json
All people here are fake: region code 99xxxx does not exist.
"""
import json

PRE = bytes.fromhex("AAAAAA9669")

def xor(b):
    x = 0
    for c in b:
        x ^= c
    return x

def frame(body):
    ln = len(body) + 1
    lb = bytes([ln >> 8, ln & 0xFF])
    return PRE + lb + body + bytes([xor(lb + body)])

W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
def check(n17):
    s = sum(int(d) * w for d, w in zip(n17, W))
    return "10X98765432"[s % 11]

def ucs2(s, nbytes):
    b = s.encode("utf-16-le")
    assert len(b) <= nbytes, s
    return b + " ".encode("utf-16-le") * ((nbytes - len(b)) // 2)

def text_block(p):
    t = (ucs2(p["name"], 30) + ucs2(p["sex"], 2) + ucs2(p["ethnicity"], 4) +
         ucs2(p["birth"], 16) + ucs2(p["address"], 70) + ucs2(p["number"], 36) +
         ucs2(p["issuer"], 30) + ucs2(p["valid_from"], 16) + ucs2(p["valid_until"], 16))
    t += b"\x20\x00" * ((256 - len(t)) // 2)  # reserved: spaces
    assert len(t) == 256
    return t

def photo(seed):
    # Not a real wlt: a recognisable fake blob, 1024 bytes.
    head = b"WLT-FAKE-" + seed.encode()
    return (head + bytes(range(256)) * 4)[:1024]

def base_data(p, ph):
    t = text_block(p)
    return bytes([len(t) >> 8, len(t) & 0xFF, len(ph) >> 8, len(ph) & 0xFF]) + t + ph

def num(prefix17):
    return prefix17 + check(prefix17)

people = [
    dict(vector="male-dated", name="测试样例", sex="1", ethnicity="01", birth="19900307",
         address="测试省样例市演示区示范路1号", number=num("99010119900307001"),
         issuer="样例市公安局测试分局", valid_from="20200101", valid_until="20400101"),
    dict(vector="female-longterm", name="样例乙", sex="2", ethnicity="05", birth="19580229" if False else "19560229",
         address="测试省样例县演示镇示范村2组", number=None,
         issuer="样例县公安局", valid_from="20160815", valid_until="长期"),
]
# Find a sequence number that gives the check digit X for the second person.
for seq in range(2, 999, 2):
    n17 = "990102" + "19560229" + "%03d" % seq
    if check(n17) == "X":
        people[1]["number"] = n17 + "X"
        break

ETH = {"01": "汉", "05": "维吾尔"}
SEX = {"1": "男", "2": "女"}

def iso(d):
    return "%s-%s-%s" % (d[:4], d[4:6], d[6:])

out = {"about": "ID-card reader vectors for firmware-specs/idcard.md; composed by gen_vectors.py, not by the codec. All data is fake.",
       "requests": [], "responses": [], "cards": [], "malformed_frames": [], "malformed_cards": []}

for name, cmd, para in [("reset", 0x10, 0xFF), ("sam_status", 0x11, 0xFF), ("find_card", 0x20, 0x01),
                        ("select_card", 0x20, 0x02), ("read_base", 0x30, 0x01)]:
    out["requests"].append(dict(name=name, cmd=cmd, para=para, hex=frame(bytes([cmd, para])).hex()))

def resp(name, sw3, data=b"", sw1=0, sw2=0):
    body = bytes([sw1, sw2, sw3]) + data
    out["responses"].append(dict(name=name, sw1=sw1, sw2=sw2, sw3=sw3, data=data.hex(), hex=frame(body).hex()))
    return frame(body)

resp("ok_no_data", 0x90)
resp("find_ok", 0x9F, bytes(4))
resp("find_no_card", 0x80)
resp("select_ok", 0x90, bytes(8))
resp("select_failed", 0x81)
resp("read_failed", 0x41)
resp("checksum_error_reported", 0x10)
resp("unknown_command", 0x21)
resp("sam_self_test_failed", 0x60)

cards = []
for p in people:
    ph = photo(p["vector"])
    data = base_data(p, ph)
    fr = frame(bytes([0, 0, 0x90]) + data)
    assert len(fr) == 7 + 0x508
    cards.append((p, data, fr))
    out["cards"].append(dict(
        name=p["vector"], hex=fr.hex(),
        fields=dict(name=p["name"], sex=p["sex"], sex_name=SEX[p["sex"]], ethnicity=p["ethnicity"],
                    ethnicity_name=ETH[p["ethnicity"]], birth_date=iso(p["birth"]), address=p["address"],
                    number=p["number"], issuer=p["issuer"], valid_from=iso(p["valid_from"]),
                    valid_until="" if p["valid_until"] == "长期" else iso(p["valid_until"]),
                    long_term=p["valid_until"] == "长期", photo_len=len(ph), photo_prefix=ph[:16].hex())))

ok = bytes.fromhex(out["responses"][0]["hex"])
def mf(name, b, err):
    out["malformed_frames"].append(dict(name=name, hex=b.hex(), error=err))
mf("empty", b"", "short")
mf("header_only", ok[:6], "short")
mf("bad_preamble", bytes.fromhex("AAAAAA9670") + ok[5:], "preamble")
mf("truncated_body", ok[:-1], "short")
mf("trailing_byte", ok + b"\x00", "length")
mf("bad_checksum", ok[:-1] + bytes([ok[-1] ^ 0x01]), "checksum")
lb = bytes([0, 3]); body = bytes([0, 0])
mf("length_too_small", PRE + lb + body + bytes([xor(lb + body)]), "length")
mf("length_over_max", PRE + bytes([0x20, 0x01]) + bytes(0x2001), "length")
big = cards[0][2]
mf("base_info_bad_checksum", big[:-1] + bytes([big[-1] ^ 0xFF]), "checksum")

# Malformed base-info data (the response data after SW1 SW2 SW3).
p0, d0, _ = cards[0]
def mc(name, b, err):
    out["malformed_cards"].append(dict(name=name, hex=b.hex(), error=err))
mc("empty", b"", "malformed")
mc("lengths_only", d0[:4], "malformed")
mc("text_length_not_256", bytes([0, 0xFE, 4, 0]) + d0[4:4 + 254] + d0[4 + 256:], "malformed")
mc("photo_shorter_than_declared", d0[:-1], "malformed")
mc("trailing_byte", d0 + b"\x00", "malformed")

def with_field(p, **kw):
    q = dict(p); q.update(kw)
    return base_data(q, photo(p["vector"]))
n = p0["number"]
wrong = n[:17] + ("0" if n[17] != "0" else "1")
mc("bad_check_digit", with_field(p0, number=wrong), "field")
mc("short_number", with_field(p0, number=n[:15]), "field")
mc("bad_birth_date", with_field(p0, birth="19900230"), "field")
mc("bad_sex_code", with_field(p0, sex="7"), "field")
mc("bad_valid_until", with_field(p0, valid_until="2040XX01"), "field")
mc("empty_name", with_field(p0, name=""), "field")
# An unpaired UTF-16 surrogate in the name.
bad = bytearray(d0); bad[4:6] = b"\x00\xD8"
mc("unpaired_surrogate", bytes(bad), "field")

print(json.dumps(out, ensure_ascii=False, indent=1))
