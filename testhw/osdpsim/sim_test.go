package osdpsim

import (
	"bytes"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/osdpvectors"
)

// The simulator answers the vector commands with the vector replies byte
// for byte: plaintext ID and CAP-style exchanges and whole secure sessions
// (handshake, MAC chain, encryption, KEYSET).
func TestSecureSessionVectors(t *testing.T) {
	v := osdpvectors.MustLoad()
	for _, s := range v.Secure {
		t.Run(s.Name, func(t *testing.T) {
			cfg := Config{Address: s.Addr, Vendor: [3]byte{0x0a, 0x0b, 0x0c}, Model: 1, Serial: 0x12345678,
				Rand: bytes.NewReader(s.RndB)}
			if s.SCBKDefault {
				cfg.Install = true
			} else {
				cfg.Key = s.SCBK
			}
			p := NewPD(cfg)
			p.lastSeq = 0 // the session starts at SQN 1 after an earlier exchange
			var cmd []byte
			for i, m := range s.Messages {
				if m.Dir == "cmd" {
					cmd = m.Hex
					continue
				}
				// Queue the event the reply carries, as a swipe would.
				switch m.Code {
				case 0x50, 0x51, 0x53:
					p.queue(m.Code, m.PlainData)
				}
				f, _, _ := parseFrame(cmd)
				if f == nil {
					t.Fatalf("message %d: vector command does not parse", i)
				}
				got := p.handle(f)
				if !bytes.Equal(got, m.Hex) {
					t.Fatalf("message %d: reply %x\nwant %x", i, got, m.Hex)
				}
			}
			if s.SCBKDefault && (p.InstallMode() || !bytes.Equal(p.Key(), []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff})) {
				t.Errorf("after KEYSET: install %v key %x", p.InstallMode(), p.Key())
			}
		})
	}
}

func TestPlainVectors(t *testing.T) {
	v := osdpvectors.MustLoad()
	for _, c := range v.CRC16 {
		if got := crc16(c.Input); got != c.CRC {
			t.Errorf("crc16(%x) = %#x, want %#x", c.Input, got, c.CRC)
		}
	}
	for _, c := range v.Checksum {
		if got := sum8(c.Input); got != c.Checksum {
			t.Errorf("sum8(%x) = %#x", c.Input, got)
		}
	}
	for _, pk := range v.Packets {
		f, _, _ := parseFrame(pk.Hex)
		if f == nil || f.code != pk.Code || !bytes.Equal(f.data, pk.Data) || f.seq != pk.Seq {
			t.Errorf("%s: parse %+v", pk.Name, f)
		}
		if pk.Reply {
			got := buildReply(pk.Addr, pk.Seq, pk.CRC, nil, pk.Code, pk.Data, nil)
			if !bytes.Equal(got, pk.Hex) {
				t.Errorf("%s: build %x want %x", pk.Name, got, pk.Hex)
			}
		}
	}
	for _, m := range v.Malformed {
		if f, _, _ := parseFrame(m.Hex); f != nil {
			t.Errorf("%s: parsed a malformed packet", m.Name)
		}
	}
	// The PDID vector is what this PD reports.
	p := NewPD(Config{Address: 1, Vendor: [3]byte{0x0a, 0x0b, 0x0c}, Model: 1, Version: 2, Serial: 0x12345678, Firmware: [3]byte{3, 4, 5}})
	f, _, _ := parseFrame(v.Packets[2].Hex) // osdp_ID, SQN 0
	if got := p.handle(f); !bytes.Equal(got[6:len(got)-2], v.Packets[6].Data) {
		t.Errorf("PDID data %x, want %x", got[6:len(got)-2], v.Packets[6].Data)
	}
}

// A lone PD answers osdp_ID sent to the configuration address 0x7F with its
// own address; on a bus of two, nobody answers.
func TestBroadcastAnsweredByALonePD(t *testing.T) {
	id := []byte{0x53, 0x7F, 0x09, 0x00, 0x04, 0x61, 0x00}
	c := crc16(id)
	id = append(id, byte(c), byte(c>>8))
	f, _, _ := parseFrame(id)
	if f == nil {
		t.Fatal("osdp_ID to 0x7F does not parse")
	}
	pd := NewPD(Config{Address: 5, Vendor: [3]byte{1, 2, 3}})
	got := NewBus(pd).handle(f)
	r, _, _ := parseFrame(got)
	if r == nil || r.addr != 0x85 || r.code != 0x45 {
		t.Fatalf("reply %x: want a PDID from address 5", got)
	}
	if pd.Count(0x61) != 1 {
		t.Errorf("Count(ID) = %d, want 1", pd.Count(0x61))
	}
	if out := NewBus(NewPD(Config{Address: 1}), NewPD(Config{Address: 2})).handle(f); out != nil {
		t.Errorf("a bus of two answered the broadcast: %x", out)
	}
}
