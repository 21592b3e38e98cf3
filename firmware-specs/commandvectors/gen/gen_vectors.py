#!/usr/bin/env python3
"""Signed-command test vectors (firmware-specs/hub-commands.md), written
from the spec independently of sync/wire and agent/command. Prints
vectors.json. Needs the 'cryptography' package (Ed25519)."""
import base64, hashlib, json, struct
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

DOMAIN = b"kioskedge-cmd-v1"
SEED = hashlib.sha256(b"kioskedge command vector key 1").digest()
OTHER = hashlib.sha256(b"kioskedge command vector key 2 (not the hub's)").digest()
AGENT = "gate-01"
NOW = "2026-03-01T10:00:00Z"
ISSUED = "2026-03-01T09:59:55Z"
EXPIRES = "2026-03-01T10:01:00Z"


def pub(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def canon_time(s):
    """RFC 3339 text -> canonical UTC text with nanoseconds, zeros trimmed.
    Handles the forms used below: Z or +hh:mm, optional fraction."""
    date, rest = s.split("T")
    if rest.endswith("Z"):
        clock, off = rest[:-1], 0
    else:
        clock, sign, oz = rest[:-6], rest[-6], rest[-5:]
        off = (int(oz[:2]) * 60 + int(oz[3:])) * (1 if sign == "+" else -1)
    frac = ""
    if "." in clock:
        clock, frac = clock.split(".")
    h, m, sec = (int(x) for x in clock.split(":"))
    y, mo, d = (int(x) for x in date.split("-"))
    mins = h * 60 + m - off
    # the vectors never cross a day boundary
    assert 0 <= mins < 24 * 60
    out = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, mins // 60, mins % 60, sec)
    frac = frac.rstrip("0")
    if frac:
        out += "." + frac
    return out + "Z"


def canonical(f):
    fields = [DOMAIN, f["id"].encode(), f["agent"].encode(), f["name"].encode(),
              f.get("args_raw", "").encode(), canon_time(f["issued"]).encode(),
              canon_time(f["expires"]).encode(), f["nonce"].encode()]
    return b"".join(struct.pack(">I", len(x)) + x for x in fields)


def sign(seed, f):
    return base64.b64encode(Ed25519PrivateKey.from_private_bytes(seed).sign(canonical(f))).decode()


def payload(f, sig):
    """The JSON text, written by hand so args keep their exact bytes."""
    parts = ['"id":%s' % json.dumps(f["id"]), '"agent":%s' % json.dumps(f["agent"]),
             '"name":%s' % json.dumps(f["name"])]
    if "args_raw" in f:
        parts.append('"args":' + f["args_raw"])
    parts += ['"issued":%s' % json.dumps(f["issued"]), '"expires":%s' % json.dumps(f["expires"])]
    if "nonce" in f:
        parts.append('"nonce":%s' % json.dumps(f["nonce"]))
    if sig is not None:
        parts.append('"sig":%s' % json.dumps(sig))
    return "{" + ",".join(parts) + "}"


n = [0]


def fields(**kw):
    n[0] += 1
    f = {"id": "c-%d" % n[0], "agent": AGENT, "name": "door.open", "args_raw": '{"door":"d1"}',
         "issued": ISSUED, "expires": EXPIRES, "nonce": "nonce-%02d-0123456789abcdef" % n[0]}
    f.update(kw)
    return {k: v for k, v in f.items() if v is not None}


seq = []


def signed(name, code, f, execs=None, seed=SEED, tamper=None, sig=Ellipsis):
    s = sign(seed, f) if sig is Ellipsis else sig
    g = dict(f)
    if tamper:
        g.update(tamper)
    v = {"name": name, "payload": payload(g, s), "canonical": canonical(g).hex(), "code": code}
    if execs:
        v["executes"] = execs
    seq.append(v)


def raw(name, text, code):
    seq.append({"name": name, "payload": text, "code": code})


v1 = fields()
signed("valid door.open", "ok", v1, {"name": "door.open", "door": "d1"})
signed("replay of the first command", "replayed", v1)
signed("valid door.mode, args with spaces, times with a zone and fractions", "ok",
       fields(name="door.mode", args_raw='{ "door" : "north-1", "mode":"locked_down" }',
              issued="2026-03-01T11:59:59.25+02:00", expires="2026-03-01T12:00:30.500+02:00"),
       {"name": "door.mode", "door": "north-1", "mode": "locked_down"})
signed("expired 10s ago, within the 30s skew", "ok", fields(issued="2026-03-01T09:59:00Z",
       expires="2026-03-01T09:59:50Z"), {"name": "door.open", "door": "d1"})
signed("unsigned: no sig", "unsigned", fields(), sig=None)
signed("unsigned: empty sig", "unsigned", fields(), sig="")
signed("signed by another key", "unsigned", fields(), seed=OTHER)
signed("sig not base64", "unsigned", fields(), sig="not base64!")
signed("sig of 63 bytes", "unsigned", fields(), sig=base64.b64encode(b"\x01" * 63).decode())
signed("sig unpadded base64", "unsigned", fields(), sig=sign(SEED, fields()).rstrip("="))
for fld, val in [("id", "c-evil"), ("agent", "gate-02"), ("name", "door.mode"),
                 ("args_raw", '{"door":"d2"}'), ("args whitespace", '{"door": "d1"}'),
                 ("issued", "2026-03-01T09:59:56Z"), ("expires", "2026-03-01T10:09:00Z"),
                 ("nonce", "nonce-tampered-0123456789")]:
    key = "args_raw" if fld.startswith("args") else fld
    signed("signed then %s changed" % fld.replace("_raw", ""), "unsigned", fields(), tamper={key: val})
f = fields()
g = {k: v for k, v in f.items() if k != "args_raw"}
seq.append({"name": "signed then args removed", "payload": payload(g, sign(SEED, f)),
            "canonical": canonical(g).hex(), "code": "unsigned"})
signed("wrong agent", "wrong_agent", fields(agent="gate-02"))
signed("expired 31s ago, beyond the skew", "expired", fields(issued="2026-03-01T09:59:00Z",
       expires="2026-03-01T09:59:29Z"))
signed("expiry 10m31s ahead, beyond horizon plus skew", "too_far", fields(expires="2026-03-01T10:10:31Z"))
signed("unknown command", "unknown_command", fields(name="door.explode"))
signed("door.open without args", "bad_args", fields(args_raw=None))
signed("door.open empty door", "bad_args", fields(args_raw='{"door":""}'))
signed("door.open extra arg", "bad_args", fields(args_raw='{"door":"d1","pulse_ms":99999}'))
signed("door.mode unknown mode", "bad_args", fields(name="door.mode", args_raw='{"door":"d1","mode":"open"}'))
signed("door.mode missing mode", "bad_args", fields(name="door.mode", args_raw='{"door":"d1"}'))
seq.append({"name": "garbage bytes (not UTF-8)", "payload_hex": "fffe00c3287b226964223a",
            "code": "malformed"})
raw("empty", "", "malformed")
raw("JSON null", "null", "malformed")
raw("JSON array", "[1,2]", "malformed")
raw("truncated JSON", payload(fields(), "AAAA")[:60], "malformed")
raw("trailing data", payload(fields(), "AAAA") + "{}", "malformed")
raw("unknown field", payload(fields(), "AAAA")[:-1] + ',"admin":true}', "malformed")
raw("missing nonce", payload(fields(nonce=None), "AAAA"), "malformed")
raw("nonce too short", payload(fields(nonce="short"), "AAAA"), "malformed")
raw("nonce with a slash", payload(fields(nonce="nonce/0123456789abcdef"), "AAAA"), "malformed")
raw("id with a space", payload(fields(id="c 1"), "AAAA"), "malformed")
raw("agent with a wildcard", payload(fields(agent="gate-+"), "AAAA"), "malformed")
raw("issued after expires", payload(fields(issued="2026-03-01T10:02:00Z"), "AAAA"), "malformed")
raw("args not an object", payload(fields(args_raw='"d1"'), "AAAA"), "malformed")
raw("expires not a time", payload(fields(expires="tomorrow"), "AAAA"), "malformed")
raw("missing expires", payload(fields(), "AAAA").replace('"expires":"%s",' % EXPIRES, ""), "malformed")
raw("missing issued", payload(fields(), "AAAA").replace('"issued":"%s",' % ISSUED, ""), "malformed")

print(json.dumps({
    "about": "Signed command corpus (firmware-specs/hub-commands.md). Feed 'sequence' in order "
             "to one fresh agent whose id is 'agent', at agent time 'now', with max_horizon_s and "
             "skew_s; each payload must get 'code', and the ok ones execute 'executes' once. "
             "Generated by gen/gen_vectors.py.",
    "seed": SEED.hex(), "public_key": pub(SEED).hex(),
    "other_seed": OTHER.hex(), "other_public_key": pub(OTHER).hex(),
    "agent": AGENT, "now": NOW, "max_horizon_s": 600, "skew_s": 30,
    "sequence": seq,
}, indent=1))
