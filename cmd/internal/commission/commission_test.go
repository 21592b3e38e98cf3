package commission

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/certs"
)

func tlsConfig(t *testing.T, url string, client certs.Pair, ca string) config.Config {
	t.Helper()
	toml := fmt.Sprintf(`
[agent]
id = "kiosk-9"
data_dir = "data"
[hub]
broker = %q
root = "kioskedge/test"
ca_file = %q
cert_file = %q
key_file = %q
[localapi]
enabled = false
`, url, ca, client.CertFile, client.KeyFile)
	c, err := config.Parse([]byte(toml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHubChecksOverTLS(t *testing.T) {
	pki := certs.ForTest(t)
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi, TLS: &broker.TLSListener{
		CertFile: pki.Server.CertFile, KeyFile: pki.Server.KeyFile, CAFile: pki.CAFile, RequireClientCert: true}})
	for _, tc := range []struct {
		name       string
		client     certs.Pair
		warn       time.Duration // the test certificates last a day
		hubOK      bool
		tlsOK      bool
		wantDetail string
	}{
		{"box certificate", pki.Client, time.Hour, true, true, "kioskedge-test-broker"},
		{"expiring soon", pki.Client, 48 * time.Hour, true, false, "client certificate expires within 48h"},
		{"certificate of another CA", pki.ForeignClient, time.Hour, false, false, "refused the box's certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs := HubChecks(context.Background(), HubOptions{Config: tlsConfig(t, b.URL(), tc.client, pki.CAFile), Timeout: 2 * time.Second, CertWarning: tc.warn})
			m := map[string]Check{}
			for _, c := range cs {
				m[c.Name] = c
			}
			if m["hub"].OK != tc.hubOK || m["tls"].OK != tc.tlsOK {
				t.Fatalf("hub %+v\ntls %+v", m["hub"], m["tls"])
			}
			if got := m["tls"].Detail + m["tls"].Reason; !strings.Contains(got, tc.wantDetail) {
				t.Errorf("tls check %q lacks %q", got, tc.wantDetail)
			}
			if tc.tlsOK && (!strings.Contains(m["tls"].Detail, "TLS 1.") || !strings.Contains(m["tls"].Detail, "client ")) {
				t.Errorf("tls detail lacks the version or the client certificate: %q", m["tls"].Detail)
			}
			// No hub answers time/req on this bare broker.
			if c := m["clock"]; tc.hubOK && (c.OK || !strings.Contains(c.Detail, "did not answer")) {
				t.Errorf("clock without a hub: %+v", c)
			}
		})
	}
}

func TestReportForms(t *testing.T) {
	r := Report{Agent: "gate-1", Site: "North gate", Time: time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC), Version: "test",
		Checks: []Check{pass("disk", "fine"), failed("door:side", "relay pulsed", ReasonNoFeedback)}}
	if s := r.Summarize(); s.OK || s.Passed != 1 || s.Failed != 1 {
		t.Fatalf("summary %+v", s)
	}
	txt := r.Text()
	for _, want := range []string{"agent    gate-1", "PASS  disk", "FAIL  door:side", "→ " + ReasonNoFeedback, "1 of 2 checks failed"} {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks %q:\n%s", want, txt)
		}
	}
	rc := r.Receipt()
	var lines []string
	for _, l := range rc.Lines {
		lines = append(lines, l.Text)
	}
	if all := strings.Join(lines, "\n"); !strings.Contains(all, "FAIL door:side") || !strings.Contains(all, "ok   disk") {
		t.Errorf("receipt:\n%s", all)
	}
	rec, err := r.Record()
	if err != nil || rec.Kind != RecordKind || rec.Class != RecordClass || !strings.Contains(string(rec.Body), `"reason":"relay without door feedback`) {
		t.Fatalf("record %v %+v", err, rec)
	}
	dir := t.TempDir()
	jp, tp, err := Save(dir, r)
	if err != nil || !strings.HasSuffix(jp, "report-20261128T200000.000Z.json") || !strings.HasSuffix(tp, ".txt") {
		t.Fatalf("save: %v %s %s", err, jp, tp)
	}
}
