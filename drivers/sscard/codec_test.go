package sscard

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/sscardvectors"
)

var vec = sscardvectors.MustLoad()

func errKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrShortFrame):
		return "short"
	case errors.Is(err, ErrChecksum):
		return "checksum"
	case errors.Is(err, ErrFraming):
		return "framing"
	case errors.Is(err, ErrWrongApplication):
		return "wrong_application"
	case errors.Is(err, ErrLocked):
		return "locked"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	var se *StatusError
	if errors.As(err, &se) {
		return "status"
	}
	return "other: " + err.Error()
}

func TestFrameVectors(t *testing.T) {
	for _, v := range vec.Frames {
		b := sscardvectors.Bytes(v.Hex)
		p, n, err := ParseFrame(b)
		if got := errKind(err); got != v.Err || n != v.N || !bytes.Equal(p, sscardvectors.Bytes(v.Payload)) {
			t.Errorf("%s: ParseFrame = %x, %d, %q; want %s, %d, %q", v.Name, p, n, got, v.Payload, v.N, v.Err)
		}
		if v.Err == "" {
			enc, err := AppendFrame(nil, sscardvectors.Bytes(v.Payload))
			if err != nil || !bytes.Equal(enc, b) {
				t.Errorf("%s: AppendFrame = %x, %v; want %s", v.Name, enc, err, v.Hex)
			}
		}
	}
	if _, err := AppendFrame(nil, nil); !errors.Is(err, ErrFraming) {
		t.Errorf("empty payload: %v", err)
	}
	if _, err := AppendFrame(nil, make([]byte, MaxPayload+1)); !errors.Is(err, ErrFraming) {
		t.Errorf("oversized payload: %v", err)
	}
}

// A stream of garbage, a truncated frame, a bad BCC and valid frames yields
// exactly the valid payloads when drained with the receive rules.
func TestFrameResync(t *testing.T) {
	f1, _ := AppendFrame(nil, []byte{0x11, 0x00, 0x01})
	f2, _ := AppendFrame(nil, []byte{0x14, 0x00, 0x02, 0x03, 0x90, 0x00})
	bad := append([]byte(nil), f1...)
	bad[len(bad)-2] ^= 0xFF
	var stream []byte
	stream = append(stream, 0xFF, 0x00, 0x03)
	stream = append(stream, f2[:6]...) // truncated
	stream = append(stream, f1...)
	stream = append(stream, bad...)
	stream = append(stream, 0x02, 0x02, 0x03) // bad length
	stream = append(stream, f2...)
	var got [][]byte
	errs := map[string]int{}
	for len(stream) > 0 {
		p, n, err := ParseFrame(stream)
		if errors.Is(err, ErrShortFrame) {
			break
		}
		if err != nil {
			errs[errKind(err)]++
		} else {
			got = append(got, append([]byte(nil), p...))
		}
		stream = stream[n:]
	}
	if len(got) != 2 || !bytes.Equal(got[0], f1[3:6]) || !bytes.Equal(got[1], f2[3:9]) {
		t.Fatalf("payloads %x", got)
	}
	if errs["checksum"] != 1 || errs["framing"] < 2 {
		t.Errorf("errors %v", errs)
	}
}

func TestAPDUVectors(t *testing.T) {
	built := map[string][]byte{
		"SELECT SSSE by AID":                      SelectAID(SSSEAID).Bytes(),
		"SELECT EF05":                             SelectFile(FileIssuer).Bytes(),
		"SELECT EF06":                             SelectFile(FileHolder).Bytes(),
		"READ RECORD 07 (card number), Le 00":     ReadRecord(0x07, 0).Bytes(),
		"READ RECORD 09 (name), Le 00":            ReadRecord(0x09, 0).Bytes(),
		"READ RECORD 09 (name), Le 20 after 6C20": ReadRecord(0x09, 0x20).Bytes(),
		"GET RESPONSE 12":                         GetResponse(0x12).Bytes(),
	}
	for _, v := range vec.APDUs {
		b, ok := built[v.Name]
		if !ok {
			t.Errorf("no builder for vector %q", v.Name)
			continue
		}
		if hex.EncodeToString(b) != v.Hex {
			t.Errorf("%s: %x, want %s", v.Name, b, v.Hex)
		}
	}
	if hex.EncodeToString(SSSEAID) != vec.Card.AID {
		t.Errorf("AID %x, want %s", SSSEAID, vec.Card.AID)
	}
}

func TestResponseVectors(t *testing.T) {
	for _, v := range vec.Responses {
		data, sw, err := ParseResponse(sscardvectors.Bytes(v.Hex))
		if err == nil {
			err = CheckSW("test", sw)
		}
		if got := errKind(err); got != v.Err || int(sw) != v.SW || !bytes.Equal(data, sscardvectors.Bytes(v.Data)) {
			t.Errorf("%s: %x %04X %q; want %s %04X %q", v.Name, data, sw, got, v.Data, v.SW, v.Err)
		}
		var se *StatusError
		if errors.As(err, &se) && int(se.SW) != v.SW {
			t.Errorf("%s: StatusError.SW %04X", v.Name, se.SW)
		}
	}
}

func TestTLVVectors(t *testing.T) {
	for _, v := range vec.TLV {
		items, err := ParseTLV(sscardvectors.Bytes(v.Hex))
		if got := errKind(err); got != v.Err {
			t.Errorf("%s: err %q, want %q", v.Name, got, v.Err)
			continue
		}
		if len(items) != len(v.Items) {
			t.Errorf("%s: %d items, want %d", v.Name, len(items), len(v.Items))
			continue
		}
		for i, it := range items {
			if int(it.Tag) != v.Items[i].Tag || hex.EncodeToString(it.Value) != v.Items[i].Value {
				t.Errorf("%s: item %d = %02X %x", v.Name, i, it.Tag, it.Value)
			}
		}
	}
}

func TestDecoders(t *testing.T) {
	if s, err := decodeCN([]byte{0x01, 0x23, 0x4F, 0xFF}); s != "01234" || err != nil {
		t.Errorf("decodeCN = %q, %v", s, err)
	}
	for _, bad := range [][]byte{{0x1A}, {0xF1}} {
		if _, err := decodeCN(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("decodeCN(%x) = %v", bad, err)
		}
	}
	if d, err := decodeDate([]byte{0x20, 0x24, 0x02, 0x29}); err != nil || d.Format("2006-01-02") != "2024-02-29" {
		t.Errorf("leap day: %v %v", d, err)
	}
	for _, bad := range [][]byte{{0x20, 0x23, 0x02, 0x29}, {0x20, 0x24, 0x13, 0x01}, {0x20, 0x24, 0x01}} {
		if _, err := decodeDate(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("decodeDate(%x) = %v", bad, err)
		}
	}
	if d, err := decodeDate([]byte{0, 0, 0, 0}); err != nil || !d.IsZero() {
		t.Errorf("unset date: %v %v", d, err)
	}
	if _, err := decodeAN([]byte("AB\x01")); !errors.Is(err, ErrMalformed) {
		t.Errorf("control byte accepted: %v", err)
	}
	if _, err := decodeGBK([]byte{0xD5}); !errors.Is(err, ErrMalformed) {
		t.Errorf("cut GBK accepted: %v", err)
	}
}
