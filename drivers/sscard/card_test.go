package sscard

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// No way of printing or logging a Card shows its personal fields.
func TestCardNeverPrintsPersonalData(t *testing.T) {
	c := Card{Reader: "r1", CardID: "990000D156000005", Region: "990000", SpecVersion: "3.00",
		CardNumber: "T99000001", SSN: "990000190001010011", Name: "测试样例",
		Birth: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2034, 3, 1, 0, 0, 0, 0, time.UTC)}
	var printed []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		printed = append(printed, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c))
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("read", "card", c, "ptr", &c, "cred", c.Credential())
	}
	printed = append(printed, buf.String())
	for _, p := range printed {
		for _, secret := range []string{"T99000001", "990000190001010011", "测试样例", "D156000005", "1900"} {
			if strings.Contains(p, secret) {
				t.Errorf("printed a personal value (%d characters): masked output was expected", len(secret))
			}
		}
		if !strings.Contains(p, "9900**********0011") && !strings.Contains(p, "*") {
			t.Errorf("no masked value in output")
		}
	}
}
