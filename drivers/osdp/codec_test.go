package osdp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/osdpvectors"
)

var vec = osdpvectors.MustLoad()

func TestCRCAndChecksumVectors(t *testing.T) {
	for _, v := range vec.CRC16 {
		if got := CRC16(v.Input); got != v.CRC {
			t.Errorf("CRC16(%x) = %#04x, want %#04x", v.Input, got, v.CRC)
		}
	}
	for _, v := range vec.Checksum {
		if got := Checksum(v.Input); got != v.Checksum {
			t.Errorf("Checksum(%x) = %#02x, want %#02x", v.Input, got, v.Checksum)
		}
	}
}

func vecPacket(v osdpvectors.Packet) Packet {
	p := Packet{Addr: v.Addr, Reply: v.Reply, Seq: v.Seq, CRC: v.CRC, Code: v.Code, Data: []byte(v.Data)}
	if len(v.SCB) > 0 {
		p.SCB = v.SCB
	}
	if len(v.MAC) > 0 {
		p.MAC = v.MAC
	}
	return p
}

func TestPacketVectors(t *testing.T) {
	for _, v := range vec.Packets {
		t.Run(v.Name, func(t *testing.T) {
			want := vecPacket(v)
			got, err := Encode(want)
			if err != nil || !bytes.Equal(got, v.Hex) {
				t.Fatalf("Encode = %x, %v; want %x", got, err, v.Hex)
			}
			p, err := Decode(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			if p.Addr != want.Addr || p.Reply != want.Reply || p.Seq != want.Seq || p.CRC != want.CRC ||
				p.Code != want.Code || !bytes.Equal(p.Data, want.Data) || !bytes.Equal(p.SCB, want.SCB) {
				t.Errorf("Decode = %+v, want %+v", p, want)
			}
		})
	}
}

var errNames = map[string]error{
	"truncated": ErrTruncated, "bad-som": ErrBadSOM, "bad-length": ErrBadLength,
	"bad-crc": ErrBadCRC, "bad-checksum": ErrBadChecksum, "bad-scb": ErrBadSCB,
}

func TestMalformedVectors(t *testing.T) {
	for _, v := range vec.Malformed {
		want := errNames[v.Error]
		if want == nil {
			t.Fatalf("%s: unknown error name %q", v.Name, v.Error)
		}
		if _, err := Decode(v.Hex); !errors.Is(err, want) {
			t.Errorf("%s: Decode(%x) error %v, want %v", v.Name, v.Hex, err, want)
		}
	}
}

// Garbage and a truncated packet between two good ones: the framer skips
// them, reports why, and still delivers both good packets.
func TestFramerSkipsGarbage(t *testing.T) {
	good := vec.Packets[0].Hex
	reply := vec.Packets[4].Hex
	var f Framer
	f.Write([]byte{0x00, 0xFF, 0x53, 0x53})
	f.Write(good)
	f.Write(reply[:5]) // truncated
	f.Write([]byte{0x12, 0x34})
	f.Write(reply)
	var got [][]byte
	var errs, skipped int
	for {
		p, raw, n, err, ok := f.Next()
		skipped += n
		if err != nil {
			errs++
		}
		if !ok {
			break
		}
		got = append(got, raw)
		_ = p // decoded fields checked in TestPacketVectors
	}
	if len(got) != 2 || !bytes.Equal(got[0], good) || !bytes.Equal(got[1], reply) {
		t.Fatalf("got %x", got)
	}
	if skipped != 4+5+2 || errs == 0 {
		t.Errorf("skipped %d bytes with %d errors, want 11 with some", skipped, errs)
	}
}

func key16(b []byte) (k [16]byte) { copy(k[:], b); return }
func key8(b []byte) (k [8]byte)   { copy(k[:], b); return }

func TestSCBKFromMaster(t *testing.T) {
	for _, v := range vec.SCBKFromMaster {
		if got := DeriveSCBK(key16(v.MasterKey), key8(v.CUID)); !bytes.Equal(got[:], v.SCBK) {
			t.Errorf("DeriveSCBK = %x, want %x", got, v.SCBK)
		}
	}
}

// The CP side of each recorded session: keys, cryptograms, then every
// command sealed byte for byte and every reply opened to its plain data.
func TestSecureSessionVectors(t *testing.T) {
	for _, v := range vec.Secure {
		t.Run(v.Name, func(t *testing.T) {
			rndA, rndB := key8(v.RndA), key8(v.RndB)
			k := DeriveSessionKeys(key16(v.SCBK), rndA)
			if !bytes.Equal(k.Enc[:], v.SEnc) || !bytes.Equal(k.MAC1[:], v.SMAC1) || !bytes.Equal(k.MAC2[:], v.SMAC2) {
				t.Fatalf("session keys %x %x %x", k.Enc, k.MAC1, k.MAC2)
			}
			cc := ClientCryptogram(k, rndA, rndB)
			sc := ServerCryptogram(k, rndA, rndB)
			ri := InitialRMAC(k, sc)
			if !bytes.Equal(cc[:], v.ClientCryptogram) || !bytes.Equal(sc[:], v.ServerCryptogram) || !bytes.Equal(ri[:], v.RMACI) {
				t.Fatalf("cryptograms %x %x %x", cc, sc, ri)
			}
			s := NewSession(k, ri)
			for i, m := range v.Messages[4:] {
				if m.Dir == "cmd" {
					got, err := s.SealCommand(Packet{Addr: v.Addr, Seq: m.Seq, CRC: true, Code: m.Code, Data: m.PlainData})
					if err != nil || !bytes.Equal(got, m.Hex) {
						t.Fatalf("message %d: SealCommand = %x, %v\nwant %x", i, got, err, m.Hex)
					}
					continue
				}
				p, err := Decode(m.Hex)
				if err != nil {
					t.Fatal(err)
				}
				open, err := s.OpenReply(m.Hex, p)
				if err != nil || open.Code != m.Code || !bytes.Equal(open.Data, m.PlainData) {
					t.Fatalf("message %d: OpenReply = %+v, %v", i, open, err)
				}
			}
		})
	}
}

// A reply altered in one bit, or replayed, fails the MAC and leaves the
// chain usable.
func TestOpenReplyRejectsTampering(t *testing.T) {
	v := vec.Secure[1]
	k := DeriveSessionKeys(key16(v.SCBK), key8(v.RndA))
	s := NewSession(k, key16(v.RMACI))
	cmd := v.Messages[4]
	if _, err := s.SealCommand(Packet{Addr: v.Addr, Seq: cmd.Seq, CRC: true, Code: cmd.Code}); err != nil {
		t.Fatal(err)
	}
	reply := append([]byte(nil), v.Messages[5].Hex...)
	reply[9] ^= 1
	crc := CRC16(reply[:len(reply)-2])
	reply[len(reply)-2], reply[len(reply)-1] = byte(crc), byte(crc>>8)
	p, err := Decode(reply)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenReply(reply, p); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("tampered reply: %v, want ErrBadMAC", err)
	}
	good := v.Messages[5].Hex
	p, _ = Decode(good)
	if _, err := s.OpenReply(good, p); err != nil {
		t.Fatalf("good reply after a bad one: %v", err)
	}
	if _, err := s.SealCommand(Packet{Addr: v.Addr, Seq: 1, CRC: true, Code: CmdPOLL}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenReply(good, p); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("replayed reply: %v, want ErrBadMAC", err)
	}
}

func TestReplyParsers(t *testing.T) {
	id, err := ParseIdentity(vec.Packets[6].Data)
	if err != nil || id.Serial != 0x12345678 || id.Vendor != [3]byte{0x0a, 0x0b, 0x0c} || id.Firmware != [3]byte{3, 4, 5} {
		t.Errorf("PDID = %+v, %v", id, err)
	}
	caps, err := ParseCapabilities(vec.Packets[7].Data)
	if err != nil || len(caps) != 5 || caps[4] != (Capability{CapCommSecurity, 1, 1}) {
		t.Errorf("PDCAP = %+v, %v", caps, err)
	}
	raw, err := ParseRaw(vec.Packets[8].Data)
	if err != nil || raw.Bits != 26 || !bytes.Equal(raw.Data, []byte{0x0f, 0x1e, 0x2d, 0x40}) {
		t.Errorf("RAW = %+v, %v", raw, err)
	}
	fm, err := ParseFormatted(vec.Packets[9].Data)
	if err != nil || fm.Text != "12345678" {
		t.Errorf("FMT = %+v, %v", fm, err)
	}
	kp, err := ParseKeypad(vec.Packets[10].Data)
	if err != nil || kp.Keys != "1234#" {
		t.Errorf("KEYPAD = %+v, %v", kp, err)
	}
	ls, err := ParseLocalStatus(vec.Packets[11].Data)
	if err != nil || !ls.Tamper || ls.Power {
		t.Errorf("LSTATR = %+v, %v", ls, err)
	}
	led := LEDCommand{TempOn: 5, TempOnColor: Green, TempTimer: 20, PermOn: 1, PermOnColor: Red}
	if !bytes.Equal(led.Encode(), vec.Packets[13].Data) {
		t.Errorf("LED = %x, want %x", led.Encode(), vec.Packets[13].Data)
	}
	if b := (BuzzerCommand{Tone: 2, On: 3, Off: 1, Count: 2}).Encode(); !bytes.Equal(b, vec.Packets[14].Data) {
		t.Errorf("BUZ = %x", b)
	}
	if b := (TextCommand{Command: 3, Seconds: 5, Row: 1, Column: 1, Text: "GRANTED"}).Encode(); !bytes.Equal(b, vec.Packets[15].Data) {
		t.Errorf("TEXT = %x", b)
	}
	for _, bad := range [][]byte{{0, 1, 27, 0, 1, 2, 3}, {0}, {0, 0, 0, 0}} {
		if _, err := ParseRaw(bad); !errors.Is(err, ErrBadReply) {
			t.Errorf("ParseRaw(%x) = %v", bad, err)
		}
	}
}
