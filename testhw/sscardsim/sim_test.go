package sscardsim

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/sscardvectors"
)

// NewCard, written independently, builds the same records as the vectors
// for the vector person.
func TestNewCardMatchesVectors(t *testing.T) {
	v := sscardvectors.MustLoad().Card
	c, err := NewCard(Holder{
		CardID: "990000D156000005", CardType: "3", SpecVersion: "3.00", Issued: "20240301",
		ValidUntil: "20340301", CardNumber: "T99000001", SSN: "990000190001010011", Name: "测试样例",
		Sex: "2", Ethnicity: "01", Birth: "19000101",
	})
	if err != nil {
		t.Fatal(err)
	}
	vc := VectorCard()
	for rec, want := range vc.EF05 {
		if rec == 0x04 {
			continue // the initialising organisation number differs; the driver does not read it
		}
		if !bytes.Equal(c.EF05[rec], want) {
			t.Errorf("EF05/%02X = %x, want %x", rec, c.EF05[rec], want)
		}
	}
	for rec, want := range vc.EF06 {
		if rec == 0x0C {
			continue // birthplace, not read
		}
		if !bytes.Equal(c.EF06[rec], want) {
			t.Errorf("EF06/%02X = %x, want %x", rec, c.EF06[rec], want)
		}
	}
	if hex.EncodeToString(SSSEAID) != v.AID {
		t.Errorf("AID %x", SSSEAID)
	}
	if _, err := NewCard(Holder{CardNumber: "0123456789"}); err == nil {
		t.Error("a 10-character card number fit in 9 bytes")
	}
}

type loop struct {
	in  *bytes.Buffer
	out bytes.Buffer
}

func (l *loop) Read(p []byte) (int, error)  { return l.in.Read(p) }
func (l *loop) Write(p []byte) (int, error) { return l.out.Write(p) }

// The simulator answers the spec's frame vectors: a card status command gets
// a framed reply; a frame with a bad BCC gets status 05; garbage is skipped.
func TestServeVectors(t *testing.T) {
	s := New()
	s.Insert(VectorCard())
	var in bytes.Buffer
	in.Write([]byte{0xFF, 0xEE})
	in.Write(frame([]byte{0x11}))
	bad := frame([]byte{0x12})
	bad[len(bad)-2] ^= 1
	in.Write(bad)
	in.Write(frame(append([]byte{0x14}, 0x00, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00)))
	l := &loop{in: &in}
	_ = s.Serve(l) // returns io.EOF at the end of the input
	want := append(frame([]byte{0x11, 0x00, 0x01}), frame([]byte{0x12, 0x05})...)
	want = append(want, frame([]byte{0x14, 0x03})...) // TRANSMIT before POWER ON
	if !bytes.Equal(l.out.Bytes(), want) {
		t.Errorf("replies %x\nwant    %x", l.out.Bytes(), want)
	}
	if st := s.Stats(); st.Frames != 2 || st.BadFrames != 1 {
		t.Errorf("stats %+v", st)
	}
}
