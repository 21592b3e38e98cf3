#!/usr/bin/env python3
"""Outbox export (.keo) test vectors (firmware-specs/outbox-export.md),
written from the spec independently of sync/export and sync/wire: the
batches are uncompressed envelopes (hub-protocol.md §5.1, compression 0).
Run from this directory's parent: python3 gen/gen_vectors.py
Writes ca.pem, *.keo and vectors.json. Needs the 'cryptography' package.
The keys are test keys derived from fixed strings: they sign nothing but
these vectors."""
import datetime, hashlib, json, struct
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

AGENT = "gate-01"
CREATED = "2026-11-28T09:30:00+08:00"
NOT_BEFORE = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
NOT_AFTER = datetime.datetime(2036, 1, 1, tzinfo=datetime.timezone.utc)


def scalar(label):
    n = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big")
    return n % (2**255) + 1


def ec_key(label):
    return ec.derive_private_key(scalar(label), ec.SECP256R1())


def ed_key(label):
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca_cert(key, cn, serial):
    return (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))


def box_cert(pub, cn, ca, ca_key, serial):
    return (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
            .public_key(pub).serial_number(serial)
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint(n):  # zigzag, as Go's binary.AppendVarint
    return uvarint((n << 1) ^ (n >> 63) if n >= 0 else ((-n - 1) << 1) | 1)


def record(kind, cls, unix_ms, zone_s, body):
    """hub-protocol.md §4.1 stored form."""
    k, b = kind.encode(), body.encode()
    return bytes([1, cls]) + uvarint(len(k)) + k + varint(unix_ms) + varint(zone_s) + uvarint(len(b)) + b


def batch(agent, boot, first, last, entries):
    """hub-protocol.md §5.1/§5.2, compression 0 (none)."""
    payload = bytearray()
    prev = first - 1
    for seq, raw in entries:
        payload += uvarint(seq - prev) + uvarint(len(raw)) + raw
        prev = seq
    a, bt = agent.encode(), boot.encode()
    return (b"KB\x01\x00" + uvarint(len(a)) + a + uvarint(len(bt)) + bt + uvarint(first) + uvarint(last)
            + uvarint(len(entries)) + uvarint(len(payload)) + bytes(payload))


def sign(key, digest):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(digest)
    return key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def keo(header, sections, chain, key):
    """outbox-export.md §2."""
    hj = json.dumps(header, separators=(",", ":")).encode()
    b = bytearray(b"KEOX\x01") + struct.pack(">I", len(hj)) + hj
    for s in sections:
        b += struct.pack(">I", len(s)) + s
    b += struct.pack(">I", 0) + bytes([len(chain)])
    for c in chain:
        der = c.public_bytes(serialization.Encoding.DER)
        b += struct.pack(">I", len(der)) + der
    sig = sign(key, hashlib.sha256(bytes(b)).digest())
    b += struct.pack(">H", len(sig)) + sig
    b += hashlib.sha256(bytes(b)).digest()
    return bytes(b)


def header(first, last, count, agent=AGENT):
    return {"format": 1, "agent": agent, "export_id": "00112233445566778899aabbccddeeff", "created": CREATED,
            "first": first, "last": last, "count": count, "acked_through": first - 1}


T0 = 1795829400000  # 2026-11-28T09:30:00+08:00 in unix ms


def recs(seqs):
    return [(s, record("door.opened", 2, T0 + s * 1000, 8 * 3600, '{"door":"d1","n":%d}' % s)) for s in seqs]


def main():
    ca_key, other_key = ec_key("kioskedge export vector CA"), ec_key("kioskedge export vector other CA")
    ca, other = ca_cert(ca_key, "export vector CA", 1), ca_cert(other_key, "export vector other CA", 2)
    box_ec = ec_key("kioskedge export vector box gate-01")
    box_ed = ed_key("kioskedge export vector box gate-01 ed25519")
    cert_ec = box_cert(box_ec.public_key(), AGENT, ca, ca_key, 10)
    cert_ed = box_cert(box_ed.public_key(), AGENT, ca, ca_key, 11)
    cert_foreign = box_cert(box_ec.public_key(), AGENT, other, other_key, 12)
    cert_other_cn = box_cert(box_ec.public_key(), "gate-02", ca, ca_key, 13)
    open("ca.pem", "wb").write(ca.public_bytes(serialization.Encoding.PEM))

    gap = [(14, record("outbox.gap", 3, T0 + 14000, 8 * 3600,
                       '{"reason":"disk_budget","class":"health","ranges":[[11,13]],"count":3,"bytes":210}'))]
    cases = []

    def add(name, data, expect, note, seqs=()):
        open(name + ".keo", "wb").write(data)
        cases.append({"name": name, "file": name + ".keo", "expect": expect, "note": note, "seqs": list(seqs)})

    add("ecdsa-two-batches", keo(header(1, 10, 10), [batch(AGENT, "00112233445566778899aabbccddeeff", 1, 4, recs(range(1, 5))),
                                                     batch(AGENT, "00112233445566778899aabbccddeeff", 5, 10, recs(range(5, 11)))],
                                 [cert_ec], box_ec), "ok", "ECDSA P-256, records 1..10 in two batches", range(1, 11))
    add("ed25519-evicted-range", keo(header(11, 20, 7), [batch(AGENT, "00112233445566778899aabbccddeeff", 11, 20, gap + recs(range(15, 21)))],
                                     [cert_ed], box_ed), "ok", "Ed25519; 11..13 evicted, named by the gap record at 14",
        [14] + list(range(15, 21)))
    add("foreign-ca", keo(header(1, 3, 3), [batch(AGENT, "x", 1, 3, recs(range(1, 4)))], [cert_foreign], box_ec),
        "untrusted", "signed correctly, certificate from another CA")
    add("cn-mismatch", keo(header(1, 3, 3), [batch(AGENT, "x", 1, 3, recs(range(1, 4)))], [cert_other_cn], box_ec),
        "agent", "certificate CN gate-02, header agent gate-01")
    add("overlap", keo(header(1, 6, 6), [batch(AGENT, "x", 1, 4, recs(range(1, 5))), batch(AGENT, "x", 3, 6, recs([5, 6]))],
                       [cert_ec], box_ec), "sequence", "second batch starts at 3, not 5")
    good = keo(header(1, 3, 3), [batch(AGENT, "x", 1, 3, recs(range(1, 4)))], [cert_ec], box_ec)
    bad = bytearray(good)
    bad[60] ^= 0x01
    add("flipped-bit", bytes(bad), "checksum", "one bit of the header flipped")
    add("truncated", good[:len(good) - 40], "truncated", "the last 40 bytes missing")
    json.dump({"about": "outbox-export.md vectors; verify with ca.pem as the only root", "ca": "ca.pem",
               "agent": AGENT, "cases": cases}, open("vectors.json", "w"), indent=1)


if __name__ == "__main__":
    main()
