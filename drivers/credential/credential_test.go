package credential

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"460102199001011234", "4601**********1234"},
		{"46010219900101123X", "4601**********123X"},
		{"123-45678", "*******78"},
		{"1234", "****"},
		{"", ""},
		{"ABCDEFGHIJKL", "ABCD****IJKL"},
	} {
		if got := Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := MaskName("张三丰"); got != "张**" {
		t.Errorf("MaskName = %q", got)
	}
	if MaskName("  ") != "" {
		t.Error("blank name not empty")
	}
}

func TestNormalized(t *testing.T) {
	a := Credential{Kind: IDCard, Number: " 46010219900101123x "}
	b := Credential{Kind: IDCard, Number: "46010219900101123X"}
	if a.Normalized() != b.Normalized() {
		t.Errorf("%q != %q", a.Normalized(), b.Normalized())
	}
	c := Credential{Kind: SSCard, Number: "46010219900101123X"}
	if a.Normalized() == c.Normalized() {
		t.Error("an ID card and a social security card with one number normalise alike")
	}
}

// No way of printing or logging a Credential shows its number.
func TestNeverPrintsTheNumber(t *testing.T) {
	const number = "460102199001011234"
	c := Credential{Kind: IDCard, Reader: "kiosk-1", Number: number, Raw: []byte(number)}
	var printed []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		printed = append(printed, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c))
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("read", "cred", c, "ptr", &c)
	}
	printed = append(printed, buf.String())
	for _, p := range printed {
		if strings.Contains(p, number) || strings.Contains(p, "0101") {
			t.Errorf("printed the number: %s", p)
		}
	}
}
