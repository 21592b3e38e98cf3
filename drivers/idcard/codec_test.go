package idcard

import (
	"bytes"
	"errors"
	"testing"
	"time"

	v "github.com/kioskedge/kioskedge/firmware-specs/idcardvectors"
)

var vectors = v.MustLoad()

var frameErrs = map[string]error{
	v.ErrShort: ErrShort, v.ErrPreamble: ErrPreamble, v.ErrLength: ErrLength, v.ErrChecksum: ErrChecksum,
}

func TestRequestVectors(t *testing.T) {
	for _, r := range vectors.Requests {
		got := AppendRequest(nil, Command{r.Cmd, r.Para}, nil)
		if want := v.Bytes(r.Hex); !bytes.Equal(got, want) {
			t.Errorf("%s: % X, want % X", r.Name, got, want)
		}
	}
}

func TestResponseVectors(t *testing.T) {
	for _, r := range vectors.Responses {
		b := v.Bytes(r.Hex)
		got, err := DecodeResponse(b)
		if err != nil {
			t.Errorf("%s: %v", r.Name, err)
			continue
		}
		if got.SW1 != r.SW1 || got.SW2 != r.SW2 || got.SW3 != r.SW3 || !bytes.Equal(got.Data, v.Bytes(r.Data)) {
			t.Errorf("%s: got %02X %02X %02X % X", r.Name, got.SW1, got.SW2, got.SW3, got.Data)
		}
		// Split finds the same frame after garbage.
		buf := append([]byte{0x00, 0xAA, 0x96}, b...)
		drop, f, err := Split(buf)
		if drop != 3 || f != nil || !errors.Is(err, ErrFraming) {
			t.Errorf("%s: Split over garbage = %d, %v, %v", r.Name, drop, f != nil, err)
		}
		drop, f, err = Split(buf[3:])
		if drop != len(b) || !bytes.Equal(f, b) || err != nil {
			t.Errorf("%s: Split = %d, %v", r.Name, drop, err)
		}
	}
}

func TestMalformedFrameVectors(t *testing.T) {
	for _, m := range vectors.MalformedFrames {
		_, err := DecodeResponse(v.Bytes(m.Hex))
		if want := frameErrs[m.Error]; want == nil || !errors.Is(err, want) {
			t.Errorf("%s: err %v, want class %s", m.Name, err, m.Error)
		}
	}
}

func date(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

// Every field of the vector cards decodes; the values are compared, never
// printed (they are personal data, even fake).
func TestCardVectors(t *testing.T) {
	for _, vc := range vectors.Cards {
		r, err := DecodeResponse(v.Bytes(vc.Hex))
		if err != nil || r.SW3 != StatusOK {
			t.Fatalf("%s: %v", vc.Name, err)
		}
		c, err := ParseBaseInfo(r.Data)
		if err != nil {
			t.Fatalf("%s: %v", vc.Name, err)
		}
		f := vc.Fields
		check := func(field string, ok bool) {
			if !ok {
				t.Errorf("%s: field %s differs", vc.Name, field)
			}
		}
		check("name", c.Name == f.Name)
		check("sex", string(rune(c.Sex)) == f.Sex && SexName(c.Sex) == f.SexName)
		check("ethnicity", c.Ethnicity == f.Ethnicity && EthnicityName(c.Ethnicity) == f.EthnicityName)
		check("birth_date", c.BirthDate.Equal(date(f.BirthDate)))
		check("address", c.Address == f.Address)
		check("number", c.Number == f.Number)
		check("issuer", c.Issuer == f.Issuer)
		check("valid_from", c.ValidFrom.Equal(date(f.ValidFrom)))
		check("valid_until", c.ValidUntil.Equal(date(f.ValidUntil)) && c.LongTerm == f.LongTerm)
		check("photo", len(c.Photo) == f.PhotoLen && bytes.HasPrefix(c.Photo, v.Bytes(f.PhotoPrefix)))
		check("credential", c.Credential().Number == f.Number)
	}
}

func TestMalformedCardVectors(t *testing.T) {
	for _, m := range vectors.MalformedCards {
		_, err := ParseBaseInfo(v.Bytes(m.Hex))
		want := map[string]error{v.ErrMalformed: ErrMalformed, v.ErrField: ErrBadField}[m.Error]
		if want == nil || !errors.Is(err, want) {
			t.Errorf("%s: err %v, want class %s", m.Name, err, m.Error)
		}
	}
}

func TestCheckDigit(t *testing.T) {
	for _, tc := range []struct {
		n  string
		ok bool
	}{
		{"11010519491231002X", true}, // the GB 11643 worked example
		{"11010519491231002x", true},
		{"110105194912310021", false},
		{"1101051949123100", false},
		{"1101051949123100AX", false},
		{"", false},
	} {
		if got := ValidNumber(tc.n); got != tc.ok {
			t.Errorf("ValidNumber(%s) = %v", tc.n, got)
		}
	}
}

func TestSplitStream(t *testing.T) {
	find := v.Bytes(vectors.Responses[1].Hex)
	for _, tc := range []struct {
		name  string
		buf   []byte
		drops []error // the errors of the drops before the frame
	}{
		{"clean", find, nil},
		{"partial preamble kept", append([]byte{1, 2}, find...), []error{ErrFraming}},
		{"bad length", append(append(append([]byte{}, Preamble[:]...), 0xFF, 0xFF), find...), []error{ErrLength, ErrFraming}},
		{"truncated then frame", append(append([]byte{}, find[:9]...), find...), []error{ErrChecksum, ErrFraming}},
	} {
		buf := tc.buf
		var got []error
		for len(buf) > 0 {
			drop, f, err := Split(buf)
			if f != nil {
				if !bytes.Equal(f, find) {
					t.Errorf("%s: wrong frame", tc.name)
				}
				break
			}
			if drop == 0 {
				t.Errorf("%s: stuck needing more", tc.name)
				break
			}
			got = append(got, err)
			buf = buf[drop:]
		}
		if len(got) != len(tc.drops) {
			t.Errorf("%s: drops %v, want %v", tc.name, got, tc.drops)
			continue
		}
		for i := range got {
			if !errors.Is(got[i], tc.drops[i]) {
				t.Errorf("%s: drop %d: %v, want %v", tc.name, i, got[i], tc.drops[i])
			}
		}
	}
	// A lone partial preamble is kept to wait for more.
	if drop, f, _ := Split([]byte{0xAA, 0xAA, 0xAA, 0x96}); drop != 0 || f != nil {
		t.Errorf("partial preamble dropped")
	}
}
