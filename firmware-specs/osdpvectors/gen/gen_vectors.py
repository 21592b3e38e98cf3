#!/usr/bin/env python3
"""Independent generator for firmware-specs/osdpvectors/vectors.json.

Written from firmware-specs/osdp.md alone, in another language and with
another AES implementation (pyca/cryptography) than the Go driver and the
simulator, so the vectors check both instead of echoing either.

    python3 firmware-specs/osdpvectors/gen/gen_vectors.py > firmware-specs/osdpvectors/vectors.json
"""
import json
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def crc16(data):
    # CRC-16/AUG-CCITT: poly 0x1021, init 0x1D0F, no reflection, no final xor.
    crc = 0x1D0F
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def checksum(data):
    return (-sum(data)) & 0xFF


def ecb(key, block):
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def cbc(key, iv, data):
    e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return e.update(data) + e.finalize()


def inv(b):
    return bytes(x ^ 0xFF for x in b)


def packet(addr, sqn, code, data=b"", use_crc=True, scb=None, reply=False, mac=None):
    """scb is (type, data bytes) or None; mac is a function of the bytes before it."""
    scb_bytes = b""
    if scb is not None:
        scb_bytes = bytes([2 + len(scb[1]), scb[0]]) + scb[1]
    ctrl = (sqn & 3) | (0x04 if use_crc else 0) | (0x08 if scb is not None else 0)
    total = 5 + len(scb_bytes) + 1 + len(data) + (4 if mac else 0) + (2 if use_crc else 1)
    head = bytes([0x53, addr | (0x80 if reply else 0), total & 0xFF, total >> 8, ctrl]) + scb_bytes + bytes([code]) + data
    if mac:
        head += mac(head)[:4]
    if use_crc:
        c = crc16(head)
        return head + bytes([c & 0xFF, c >> 8])
    return head + bytes([checksum(head)])


def decoded(addr, sqn, code, data=b"", use_crc=True, scb=None, reply=False, mac=b""):
    return {
        "addr": addr, "reply": reply, "sqn": sqn, "crc": use_crc,
        "scb": (bytes([2 + len(scb[1]), scb[0]]) + scb[1]).hex() if scb else "",
        "code": code, "data": data.hex(), "mac": mac.hex(),
    }


def plain(name, note, **kw):
    p = packet(**kw)
    d = decoded(**kw)
    return dict(name=name, note=note, hex=p.hex(), **d)


packets = [
    plain("poll", "osdp_POLL to PD 0, SQN 0, CRC", addr=0x00, sqn=0, code=0x60),
    plain("poll-checksum", "osdp_POLL to PD 1, SQN 1, 8-bit checksum", addr=0x01, sqn=1, code=0x60, use_crc=False),
    plain("id", "osdp_ID with the standard report request 0x00", addr=0x01, sqn=0, code=0x61, data=b"\x00"),
    plain("cap", "osdp_CAP", addr=0x01, sqn=1, code=0x62, data=b"\x00"),
    plain("ack", "osdp_ACK from PD 1", addr=0x01, sqn=2, code=0x40, reply=True),
    plain("nak-seq", "osdp_NAK: unexpected sequence number (0x04)", addr=0x01, sqn=3, code=0x41, data=b"\x04", reply=True),
    plain("pdid", "osdp_PDID: vendor 0A0B0C, model 1, version 2, serial 0x12345678 LE, firmware 3.4.5",
          addr=0x01, sqn=0, code=0x45, data=bytes.fromhex("0a0b0c010278563412030405"), reply=True),
    plain("pdcap", "osdp_PDCAP: LED(4) 1x1, buzzer(5) 1x1, text(6) 1x1, CRC(8) 1, secure channel(9) 1x1",
          addr=0x01, sqn=1, code=0x46, data=bytes.fromhex("040101050101060101080100090101"), reply=True),
    plain("raw-26", "osdp_RAW: reader 0, format 1 (Wiegand), 26 bits, 4 data bytes MSB first",
          addr=0x02, sqn=2, code=0x50, data=bytes.fromhex("0001" "1a00" "0f1e2d40"), reply=True),
    plain("fmt", "osdp_FMT: reader 0, forward, 8 ASCII characters",
          addr=0x02, sqn=3, code=0x51, data=b"\x00\x00\x08" + b"12345678", reply=True),
    plain("keypad", "osdp_KEYPAD: reader 0, 5 keys '1','2','3','4','#'(0x0D)",
          addr=0x02, sqn=1, code=0x53, data=b"\x00\x05" + b"1234\x0d", reply=True),
    plain("lstatr-tamper", "osdp_LSTATR: tamper 1, power 0", addr=0x01, sqn=2, code=0x48, data=b"\x01\x00", reply=True),
    plain("busy", "osdp_BUSY", addr=0x01, sqn=2, code=0x79, reply=True),
    plain("led", "osdp_LED: reader 0 LED 0, temporary green 5x100ms on / 0 off for 20x100ms, permanent red steady",
          addr=0x01, sqn=2, code=0x69,
          data=bytes([0, 0, 2, 5, 0, 2, 0, 20, 0, 1, 1, 0, 1, 0])),
    plain("buz", "osdp_BUZ: reader 0, default tone, 3x100ms on, 1x100ms off, 2 times",
          addr=0x01, sqn=3, code=0x6A, data=bytes([0, 2, 3, 1, 2])),
    plain("text", "osdp_TEXT: reader 0, temporary no-wrap, 5 s, row 1 col 1, 'GRANTED'",
          addr=0x01, sqn=1, code=0x6B, data=bytes([0, 3, 5, 1, 1, 7]) + b"GRANTED"),
]

malformed = [
    {"name": "bad-crc", "hex": bytes.fromhex(packets[0]["hex"][:-4]).hex() + "0000", "error": "bad-crc"},
    {"name": "bad-checksum", "hex": packets[1]["hex"][:-2] + "00", "error": "bad-checksum"},
    {"name": "truncated", "hex": packets[2]["hex"][:-6], "error": "truncated"},
    {"name": "bad-som", "hex": "54" + packets[0]["hex"][2:], "error": "bad-som"},
    {"name": "length-too-small", "hex": "5300050004", "error": "bad-length"},
]
# LEN says 9 but the SCB length byte claims 10 bytes.
bad_scb = bytearray([0x53, 0x01, 0, 0, 0x0C, 10, 0x15])
bad_scb += b"\x60"
bad_scb[2] = len(bad_scb) + 2
c = crc16(bad_scb)
bad_scb += bytes([c & 0xFF, c >> 8])
malformed.append({"name": "scb-overruns", "hex": bytes(bad_scb).hex(), "error": "bad-scb"})
# Address 0x7F is broadcast; replies never carry it, but a reply bit on 0x7F is 0xFF: undefined.
malformed.append({"name": "empty", "hex": "", "error": "truncated"})

crc_vectors = [
    {"input": b"123456789".hex(), "crc": crc16(b"123456789")},
    {"input": bytes.fromhex(packets[0]["hex"])[:-2].hex(), "crc": crc16(bytes.fromhex(packets[0]["hex"])[:-2])},
    {"input": "", "crc": crc16(b"")},
]
checksum_vectors = [
    {"input": bytes.fromhex(packets[1]["hex"])[:-1].hex(), "checksum": checksum(bytes.fromhex(packets[1]["hex"])[:-1])},
    {"input": "0102030405", "checksum": checksum(bytes.fromhex("0102030405"))},
]

# ---- secure channel -------------------------------------------------------
SCBK_D = bytes(range(0x30, 0x40))


def session(scbk, rnd_a, rnd_b):
    def k(b1):
        return ecb(scbk, bytes([0x01, b1]) + rnd_a[:6] + bytes(8))
    s_enc, s_mac1, s_mac2 = k(0x82), k(0x01), k(0x02)
    client = ecb(s_enc, rnd_a + rnd_b)
    server = ecb(s_enc, rnd_b + rnd_a)
    rmac_i = ecb(s_mac2, ecb(s_mac1, server))
    return s_enc, s_mac1, s_mac2, client, server, rmac_i


def mac16(s_mac1, s_mac2, iv, msg):
    if len(msg) % 16:
        msg = msg + b"\x80" + bytes((16 - (len(msg) + 1) % 16) % 16)
    if len(msg) > 16:
        iv = cbc(s_mac1, iv, msg[:-16])[-16:]
    return cbc(s_mac2, iv, msg[-16:])


def pad(data):
    data = data + b"\x80"
    return data + bytes((16 - len(data) % 16) % 16)


def secure_case(name, scbk, scbk_sel, rnd_a, rnd_b, cuid, addr, exchanges):
    s_enc, s_mac1, s_mac2, client, server, rmac_i = session(scbk, rnd_a, rnd_b)
    msgs = []
    def add(direction, sqn, code, data, scb, plain_data, mac=b""):
        p = packet(addr=addr, sqn=sqn, code=code, data=data, scb=scb, reply=(direction == "reply"), mac=(lambda h: mac) if mac else None)
        msgs.append({"dir": direction, "sqn": sqn, "code": code, "plain_data": plain_data.hex(), "hex": p.hex(),
                     "mac": mac.hex()})
        return p
    # Handshake (SCS_11..SCS_14): plaintext data, no MAC.
    add("cmd", 1, 0x76, rnd_a, (0x11, bytes([scbk_sel])), rnd_a)
    add("reply", 1, 0x76, cuid + rnd_b + client, (0x12, bytes([scbk_sel])), cuid + rnd_b + client)
    add("cmd", 2, 0x77, server, (0x13, bytes([scbk_sel])), server)
    add("reply", 2, 0x78, rmac_i, (0x14, b"\x01"), rmac_i)
    r_mac = rmac_i
    c_mac = None
    for direction, sqn, code, pdata in exchanges:
        is_cmd = direction == "cmd"
        iv_mac = r_mac if is_cmd else c_mac
        if pdata:
            enc = cbc(s_enc, inv(iv_mac), pad(pdata))
            scb = (0x17 if is_cmd else 0x18, b"")
        else:
            enc = b""
            scb = (0x15 if is_cmd else 0x16, b"")
        # MAC over everything before the MAC itself; LEN already counts MAC and CRC.
        head_len = 5 + 2 + 1 + len(enc) + 4 + 2
        head = bytes([0x53, addr | (0 if is_cmd else 0x80), head_len & 0xFF, head_len >> 8, (sqn & 3) | 0x0C, 2, scb[0], code]) + enc
        m = mac16(s_mac1, s_mac2, iv_mac, head)
        if is_cmd:
            c_mac = m
        else:
            r_mac = m
        add(direction, sqn, code, enc, scb, pdata, mac=m[:4])
        msgs[-1]["mac16"] = m.hex()
    return {
        "name": name, "addr": addr, "scbk": scbk.hex(), "scbk_default": scbk_sel == 0,
        "rnd_a": rnd_a.hex(), "rnd_b": rnd_b.hex(), "cuid": cuid.hex(),
        "s_enc": s_enc.hex(), "s_mac1": s_mac1.hex(), "s_mac2": s_mac2.hex(),
        "client_cryptogram": client.hex(), "server_cryptogram": server.hex(), "rmac_i": rmac_i.hex(),
        "messages": msgs,
    }


NEW_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
secure = [
    secure_case("install-scbk-d", SCBK_D, 0x00,
                bytes.fromhex("a0a1a2a3a4a5a6a7"), bytes.fromhex("b0b1b2b3b4b5b6b7"),
                bytes.fromhex("0a0b0c0178563412"), 0x01,
                [("cmd", 3, 0x60, b""), ("reply", 3, 0x40, b""),
                 ("cmd", 1, 0x75, bytes([0x01, 16]) + NEW_KEY), ("reply", 1, 0x40, b""),
                 ("cmd", 2, 0x69, bytes([0, 0, 2, 5, 0, 2, 0, 20, 0, 1, 1, 0, 1, 0])), ("reply", 2, 0x40, b"")]),
    secure_case("unique-key", NEW_KEY, 0x01,
                bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718"),
                bytes.fromhex("0a0b0c0178563412"), 0x02,
                [("cmd", 3, 0x60, b""), ("reply", 3, 0x50, bytes.fromhex("0001" "1a00" "0f1e2d40")),
                 ("cmd", 1, 0x60, b""), ("reply", 1, 0x53, b"\x00\x05" + b"1234\x0d"),
                 ("cmd", 2, 0x60, b""), ("reply", 2, 0x51, b"\x00\x00\x10" + b"0123456789ABCDEF")]),
]

master = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
cuid = bytes.fromhex("0a0b0c0178563412")
scbk_vectors = [{"master_key": master.hex(), "cuid": cuid.hex(), "scbk": ecb(master, cuid + inv(cuid)).hex()}]

json.dump({
    "crc16": crc_vectors, "checksum": checksum_vectors, "packets": packets, "malformed": malformed,
    "scbk_from_master": scbk_vectors, "secure": secure,
}, sys.stdout, indent=1)
sys.stdout.write("\n")
