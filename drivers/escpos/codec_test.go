package escpos

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kioskedge/kioskedge/firmware-specs/escposvectors"
	"github.com/kioskedge/kioskedge/testhw/escpossim"
)

func TestCommandVectors(t *testing.T) {
	cmds, err := escposvectors.LoadCommands()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		want, _ := escposvectors.Bytes(c.Hex) // checked by escposvectors' own test
		a := c.Args
		num := func(k string) uint8 { n, _ := strconv.Atoi(a[k]); return uint8(n) }
		var got []byte
		switch c.Name {
		case "initialize":
			got = Initialize()
		case "chinese-on", "chinese-off":
			got = ChineseMode(a["on"] == "true")
		case "bold-on", "bold-off":
			got = Bold(a["on"] == "true")
		case "size-normal", "size-double-width", "size-double-height", "size-double-both":
			got = Size(a["w"] == "true", a["h"] == "true")
		case "align-left", "align-center", "align-right":
			got = Align(Alignment(num("a")))
		case "feed-3":
			got = FeedLines(num("n"))
		case "cut-full", "cut-partial":
			got = Cut(a["partial"] == "true")
		case "status-1", "status-2", "status-3", "status-4":
			got = StatusQuery(num("n"))
		case "text-ascii", "text-chinese", "text-euro", "text-gb18030-4byte", "text-control-replaced":
			got, err = Text(a["text"])
		case "qr-abc", "qr-size8-h":
			got, err = QRCode([]byte(a["data"]), num("module"), ECLevel(num("ec")))
		default:
			t.Errorf("vector %s has no encoder case", c.Name)
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: % x, %v; want % x", c.Name, got, err, want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := Text("\xff"); !errors.Is(err, ErrEncode) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if _, err := QRCode(nil, 0, 0); !errors.Is(err, ErrEncode) {
		t.Errorf("empty QR: %v", err)
	}
	if _, err := QRCode([]byte("x"), 17, 0); !errors.Is(err, ErrEncode) {
		t.Errorf("module 17: %v", err)
	}
	if _, err := QRCode(make([]byte, MaxQRData+1), 0, 0); !errors.Is(err, ErrEncode) {
		t.Errorf("too long: %v", err)
	}
	if _, err := EncodeReceipt(Receipt{Lines: []Line{{Text: "\xff"}}}); !errors.Is(err, ErrEncode) {
		t.Errorf("receipt: %v", err)
	}
}

func statusFields(s Status) map[string]bool {
	return map[string]bool{"offline": s.Offline, "cover_open": s.CoverOpen, "feed_button": s.FeedButton,
		"paper_out": s.PaperOut, "error": s.Error, "cutter_error": s.CutterError, "unrecoverable": s.Unrecoverable,
		"auto_recoverable": s.AutoRecoverable, "paper_near_end": s.PaperNearEnd}
}

func TestStatusVectors(t *testing.T) {
	vs, err := escposvectors.LoadStatus()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		b, _ := escposvectors.Bytes(v.Byte)
		var s Status
		err := DecodeStatus(&s, v.N, b[0])
		if !v.Valid {
			if !errors.Is(err, ErrStatusByte) || s != (Status{}) {
				t.Errorf("%s: err %v, status %v", v.Name, err, s)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", v.Name, err)
			continue
		}
		want := map[string]bool{}
		for _, f := range v.Set {
			want[f] = true
		}
		for f, got := range statusFields(s) {
			if got != want[f] {
				t.Errorf("%s: %s = %v", v.Name, f, got)
			}
		}
	}
	var s Status
	if err := DecodeStatus(&s, 5, 0x12); err == nil {
		t.Error("n=5 accepted")
	}
}

// FuzzDecodeStatus: any byte for any n either is rejected without touching
// the status or sets only fields that n owns, and the fixed-bit check
// agrees with StatusOK.
func FuzzDecodeStatus(f *testing.F) {
	vs, err := escposvectors.LoadStatus()
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		b, _ := escposvectors.Bytes(v.Byte)
		f.Add(v.N, b[0])
	}
	f.Fuzz(func(t *testing.T, n, b byte) {
		var s Status
		err := DecodeStatus(&s, n, b)
		if n < 1 || n > 4 || !StatusOK(b) {
			if err == nil || s != (Status{}) {
				t.Fatalf("n=%d b=%02x accepted: %v", n, b, s)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 3 && (s.Offline || s.PaperOut || s.CoverOpen) {
			t.Fatalf("n=3 set %v", s)
		}
		if s.String() == "" {
			t.Fatal("empty String")
		}
	})
}

// FuzzText: any valid UTF-8 text encodes to bytes free of control bytes,
// so receipt text can never carry a command.
func FuzzText(f *testing.F) {
	cmds, err := escposvectors.LoadCommands()
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cmds {
		if t := c.Args["text"]; t != "" {
			f.Add(t)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Text(s)
		if err != nil {
			if !errors.Is(err, ErrEncode) {
				t.Fatal(err)
			}
			return
		}
		for _, c := range b {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("%q encodes to a control byte: % x", s, b)
			}
		}
	})
}

// FuzzReceiptRoundTrip: a one-line receipt encoded here and rendered by the
// independent simulator shows the line's text (control characters as '?')
// with its style, and nothing the simulator does not know.
func FuzzReceiptRoundTrip(f *testing.F) {
	cmds, err := escposvectors.LoadCommands()
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cmds {
		if t := c.Args["text"]; t != "" {
			f.Add(t, true, uint8(1))
		}
	}
	f.Fuzz(func(t *testing.T, text string, bold bool, align uint8) {
		if !utf8.ValidString(text) || text == "" {
			return
		}
		l := Line{Text: text, Bold: bold, Align: Alignment(align % 3)}
		b, err := EncodeReceipt(Receipt{Lines: []Line{l}, Cut: FullCut})
		if err != nil {
			t.Fatal(err)
		}
		sim := escpossim.New()
		sim.Feed(b)
		want := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, text)
		if bold {
			want = "<b>" + want + "</b>"
		}
		want = [...]string{"L|", "C|", "R|"}[l.Align] + want + "\n\n\n\n--- cut ---\n"
		if got := sim.Paper(); got != want || sim.Unknown() != 0 {
			t.Fatalf("paper %q, want %q (unknown %d)", got, want, sim.Unknown())
		}
	})
}
