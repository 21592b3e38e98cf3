package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/hubca"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/certs"
)

const provRoot = "kioskedge/test"

// provHub is a hub answering enrolments over a server-TLS broker, and an
// mTLS broker that trusts only the hub's box CA, as in production.
type provHub struct {
	pki     *certs.PKI
	caDir   string
	ca      *hubca.CA
	enrol   *broker.Broker // server TLS only: claim connections have no certificate
	mtls    *broker.Broker // requires a client certificate from the box CA
	inputs  string         // dir with cmd.pub and site.key from the hub
	cmdPub  string
	siteKey string
}

func newProvHub(t *testing.T) *provHub { return newProvHubKind(t, broker.Mochi) }

func newProvHubKind(t *testing.T, kind broker.Kind) *provHub {
	t.Helper()
	h := &provHub{pki: certs.ForTest(t), caDir: filepath.Join(t.TempDir(), "ca"), inputs: t.TempDir()}
	if err := hubca.Init(h.caDir, hubca.Options{}); err != nil {
		t.Fatal(err)
	}
	var err error
	if h.ca, err = hubca.Open(h.caDir, hubca.Options{}); err != nil {
		t.Fatal(err)
	}
	// Client certificates are verified if given (the hub's), not required
	// (a box enrolling has none).
	h.enrol = broker.ForTest(t, broker.Options{Kind: kind, TLS: &broker.TLSListener{
		CertFile: h.pki.Server.CertFile, KeyFile: h.pki.Server.KeyFile, CAFile: h.pki.CAFile}})
	h.mtls = broker.ForTest(t, broker.Options{Kind: kind, TLS: &broker.TLSListener{
		CertFile: h.pki.Server.CertFile, KeyFile: h.pki.Server.KeyFile,
		CAFile: filepath.Join(h.caDir, hubca.CertFile), RequireClientCert: true}})

	srv, err := hubrun.New(hubrun.Config{
		Broker:     h.enrol.URL(),
		TLS:        &uplink.TLSFiles{CAFile: h.pki.CAFile, CertFile: h.pki.Client.CertFile, KeyFile: h.pki.Client.KeyFile},
		Root:       provRoot,
		DBPath:     filepath.Join(t.TempDir(), "hub.db"),
		Backoff:    uplink.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		EnrolCADir: h.caDir,
		NoClock:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("hub close: %v", err)
		}
	})

	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h.cmdPub = filepath.Join(h.inputs, "cmd.pub")
	if err := os.WriteFile(h.cmdPub, wire.MarshalCommandPublicKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := privacy.NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	h.siteKey = filepath.Join(h.inputs, "site.key")
	if err := privacy.WriteSiteKey(h.siteKey, key); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *provHub) token(t *testing.T, ttl time.Duration) string {
	t.Helper()
	toks, err := h.ca.CreateClaims(1, ttl, hubca.ClaimOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return toks[0]
}

// args are the identity flags for agent into dir.
func (h *provHub) args(agent, dir string, more ...string) []string {
	return append([]string{"--json", "provision", "--dir", dir, "--agent", agent, "--site", "Centre 7", "--region", "460105",
		"--hub", h.mtls.URL(), "--enrol-broker", h.enrol.URL(), "--root", provRoot,
		"--hub-ca", h.pki.CAFile, "--command-key", h.cmdPub, "--site-key", h.siteKey,
		"--data-dir", filepath.Join(dir, "data"), "--timeout", "20s"}, more...)
}

// secrets returns what must never be printed: the PEM bodies of every
// private key in dir and the site key.
func secrets(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, f := range []string{provKey, provSiteKey} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				out = append(out, line)
			}
		}
	}
	return out
}

func checkNoSecrets(t *testing.T, dir string, outputs ...string) {
	t.Helper()
	for _, s := range secrets(t, dir) {
		for _, o := range outputs {
			if strings.Contains(o, s) {
				t.Fatal("a private key's content appears in the output")
			}
		}
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %04o, want %04o", filepath.Base(path), st.Mode().Perm(), want)
	}
}

// TestProvisionOnlineThenMTLSOnly runs over both broker kinds: Mochi in
// process and a real Mosquitto.
func TestProvisionOnlineThenMTLSOnly(t *testing.T) {
	for _, kind := range broker.Kinds {
		t.Run(string(kind), func(t *testing.T) { testProvisionOnline(t, newProvHubKind(t, kind)) })
	}
}

func testProvisionOnline(t *testing.T, h *provHub) {
	dir := filepath.Join(t.TempDir(), "etc")
	tok := h.token(t, time.Hour)
	code, stdout, stderr := runCtl(t, h.args("box-1", dir, "--claim", tok)...)
	if code != exitOK {
		t.Fatalf("provision: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	var res provisionResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("--json output: %v: %s", err, stdout)
	}
	if res.Status != "provisioned" || res.Mode != "online" || res.Agent != "box-1" || res.Config != filepath.Join(dir, provConfig) {
		t.Errorf("result %+v", res)
	}
	checkMode(t, filepath.Join(dir, provKey), 0o600)
	checkMode(t, filepath.Join(dir, provSiteKey), 0o600)
	checkNoSecrets(t, dir, stdout, stderr, h.enrol.LogTail())
	if strings.Contains(stdout+stderr, tok) {
		t.Error("the claim token was printed")
	}

	c, err := config.Load(filepath.Join(dir, provConfig))
	if err != nil {
		t.Fatalf("kioskd.toml: %v", err)
	}
	if c.Agent.ID != "box-1" || c.Agent.Region != "460105" || c.Hub.Plaintext || !strings.HasPrefix(c.Hub.Broker, "ssl://") ||
		c.Hub.CertFile == "" || c.Gate.CommandKeyFile == "" || c.Privacy.SiteKeyFile == "" {
		t.Errorf("config %+v %+v", c.Agent, c.Hub)
	}
	if _, err := privacy.LoadSiteKey(c.Privacy.SiteKeyFile); err != nil {
		t.Errorf("site key: %v", err)
	}

	// The agent's config connects to the broker requiring box certificates.
	connected := make(chan struct{}, 1)
	sess, err := uplink.NewSession(uplink.SessionOptions{Broker: c.Hub.Broker, ClientID: "box-1",
		TLS: &uplink.TLSFiles{CAFile: c.Hub.CAFile, CertFile: c.Hub.CertFile, KeyFile: c.Hub.KeyFile},
		OnConnect: func(context.Context, *uplink.Session) {
			select {
			case connected <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- sess.Run(ctx) }()
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatalf("the provisioned box did not connect with its certificate: %+v\n%s", sess.Stats(), h.mtls.LogTail())
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Error(err)
	}

	// Without a certificate, or with one from another CA, the broker refuses.
	if err := mqttConnect(h.mtls.Addr(), h.pki.CAFile, nil); err == nil {
		t.Error("the broker accepted a client without a certificate")
	}
	foreign, err := tls.LoadX509KeyPair(h.pki.ForeignClient.CertFile, h.pki.ForeignClient.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := mqttConnect(h.mtls.Addr(), h.pki.CAFile, &foreign); err == nil {
		t.Error("the broker accepted a certificate from another CA")
	}
	box, err := tls.LoadX509KeyPair(c.Hub.CertFile, c.Hub.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := mqttConnect(h.mtls.Addr(), h.pki.CAFile, &box); err != nil {
		t.Errorf("box certificate by hand: %v", err)
	}

	// A provisioned box is not provisioned over.
	code, _, stderr = runCtl(t, h.args("box-1", dir, "--claim", h.token(t, time.Hour))...)
	if code != exitUnusable || !strings.Contains(stderr, "already holds box.pem") {
		t.Errorf("second provision: code %d, %s", code, stderr)
	}
	// An existing kioskd.toml is left alone: identity.toml says what to copy.
	dir2 := filepath.Join(t.TempDir(), "etc")
	if err := os.MkdirAll(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, provConfig), []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(t.TempDir(), "claim.txt")
	if err := os.WriteFile(tokFile, []byte(h.token(t, time.Hour)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCtl(t, h.args("box-2", dir2, "--claim-file", tokFile)...)
	if code != exitOK {
		t.Fatalf("provision beside a config: %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, provConfig)); string(b) != "# mine\n" {
		t.Error("an existing kioskd.toml was changed")
	}
	if _, err := config.Load(filepath.Join(dir2, provIdentity)); err != nil || !strings.Contains(stdout, "hub.cert_file") {
		t.Errorf("identity.toml: %v; %s", err, stdout)
	}
}

// mqttConnect does a TLS handshake presenting cert (nil: none), sends an
// MQTT CONNECT and reads the CONNACK. It returns nil only for an accepted
// connection.
func mqttConnect(addr, caFile string, cert *tls.Certificate) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	// CONNECT, MQTT 3.1.1, clean session, keepalive 30, client id "probe".
	connect := []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 5, 'p', 'r', 'o', 'b', 'e'}
	if _, err := conn.Write(connect); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := bufio.NewReader(conn).Read(ack); err != nil {
		return err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return errRefused
	}
	return nil
}

var errRefused = os.ErrPermission

func TestProvisionRefusedTokens(t *testing.T) {
	h := newProvHub(t)
	tok := h.token(t, time.Hour)
	if code, _, stderr := runCtl(t, h.args("box-1", filepath.Join(t.TempDir(), "a"), "--claim", tok)...); code != exitOK {
		t.Fatalf("first: %d %s", code, stderr)
	}
	dir := filepath.Join(t.TempDir(), "b")
	code, stdout, stderr := runCtl(t, h.args("box-2", dir, "--claim", tok)...)
	if code != exitUnusable || !strings.Contains(stderr, "claim token already used: ask the operations team for a new one (hubd claim create)") {
		t.Errorf("reused token: code %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, provCert)); err == nil {
		t.Error("box.pem written after a refusal")
	}
	checkNoSecrets(t, dir, stdout, stderr)

	// An expired token (its 1 ns is over before the request is made).
	expired := h.token(t, time.Nanosecond)
	code, _, stderr = runCtl(t, h.args("box-3", filepath.Join(t.TempDir(), "c"), "--claim", expired)...)
	if code != exitUnusable || !strings.Contains(stderr, "claim token expired") {
		t.Errorf("expired token: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCtl(t, h.args("box-4", filepath.Join(t.TempDir(), "d"), "--claim", "kec_nosuchtoken")...)
	if code != exitUnusable || !strings.Contains(stderr, "claim token not known") {
		t.Errorf("unknown token: code %d, stderr %q", code, stderr)
	}
	// box-1 is taken: a fresh token cannot enrol another box as box-1.
	code, _, stderr = runCtl(t, h.args("box-1", filepath.Join(t.TempDir(), "e"), "--claim", h.token(t, time.Hour))...)
	if code != exitUnusable || !strings.Contains(stderr, "agent_taken") && !strings.Contains(stderr, "live certificate") {
		t.Errorf("taken agent: code %d, stderr %q", code, stderr)
	}
}

func TestProvisionConcurrentOneToken(t *testing.T) {
	h := newProvHub(t)
	tok := h.token(t, time.Hour)
	type out struct {
		code   int
		stderr string
	}
	outs := make([]out, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			var o, e bytes.Buffer
			agent := []string{"box-a", "box-b"}[i]
			outs[i].code = run(context.Background(), h.args(agent, filepath.Join(t.TempDir(), agent), "--claim", tok), &o, &e)
			outs[i].stderr = e.String()
		})
	}
	wg.Wait()
	ok, used := 0, 0
	for _, o := range outs {
		switch {
		case o.code == exitOK:
			ok++
		case o.code == exitUnusable && strings.Contains(o.stderr, "already used"):
			used++
		default:
			t.Errorf("code %d: %s", o.code, o.stderr)
		}
	}
	if ok != 1 || used != 1 {
		t.Errorf("%d succeeded, %d refused as used; want 1 and 1", ok, used)
	}
}

func TestProvisionUsage(t *testing.T) {
	h := newProvHub(t)
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"neither claim nor offline": h.args("box-1", dir),
		"both":                      h.args("box-1", dir, "--offline", "--claim", "x"),
		"claim and claim-file":      h.args("box-1", dir, "--claim", "x", "--claim-file", "y"),
		"bad agent":                 h.args("a/b", dir, "--offline"),
		"bad region":                append(h.args("box-1", dir, "--offline"), "--region", "12"),
		"plaintext hub":             append(h.args("box-1", dir, "--offline"), "--hub", "tcp://127.0.0.1:1883"),
	} {
		if code, _, stderr := runCtl(t, args...); code != exitUsage {
			t.Errorf("%s: code %d, %s", name, code, stderr)
		}
	}
	// A plaintext enrolment broker needs --enrol-plaintext: the token would cross in clear.
	code, _, stderr := runCtl(t, append(h.args("box-1", dir, "--claim", "kec_x"), "--enrol-broker", "tcp://127.0.0.1:1")...)
	if code != exitUnusable || !strings.Contains(stderr, "in clear") {
		t.Errorf("plaintext enrolment: code %d, %s", code, stderr)
	}
}

// buildHubd builds the real hubd command into dir.
func buildHubd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hubd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kioskedge/kioskedge/cmd/hubd")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building hubd: %v\n%s", err, b)
	}
	return bin
}

func TestProvisionOfflineWithHubdCASign(t *testing.T) {
	h := newProvHub(t)
	hubd := buildHubd(t)
	dir := filepath.Join(t.TempDir(), "etc")
	code, stdout, stderr := runCtl(t, h.args("gate-7", dir, "--offline")...)
	if code != exitOK {
		t.Fatalf("offline: %d %s", code, stderr)
	}
	var res provisionResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Status != "csr_written" || !strings.Contains(res.Next, "hubd ca sign") {
		t.Fatalf("offline result %+v, %v", res, err)
	}
	checkMode(t, filepath.Join(dir, provKey), 0o600)
	checkNoSecrets(t, dir, stdout, stderr)
	if _, err := os.Stat(filepath.Join(dir, provConfig)); err == nil {
		t.Error("kioskd.toml written before the certificate")
	}

	// At the hub: only the CSR travels.
	signed := filepath.Join(t.TempDir(), "box.pem")
	out, err := exec.Command(hubd, "ca", "sign", "-dir", h.caDir, "-csr", filepath.Join(dir, provCSR), "-out", signed).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "signed agent gate-7") {
		t.Fatalf("hubd ca sign: %v\n%s", err, out)
	}
	// A certificate for another box's key is refused at import.
	otherDir := filepath.Join(t.TempDir(), "other")
	if code, _, stderr := runCtl(t, h.args("gate-7", otherDir, "--offline")...); code != exitOK {
		t.Fatalf("other offline: %s", stderr)
	}
	if code, _, stderr := runCtl(t, "provision", "--dir", otherDir, "--import-cert", signed); code != exitUnusable ||
		!strings.Contains(stderr, "not for this box's key") {
		t.Errorf("import of another box's certificate: %d %s", code, stderr)
	}

	code, stdout, stderr = runCtl(t, "--json", "provision", "--dir", dir, "--import-cert", signed)
	if code != exitOK {
		t.Fatalf("import: %d %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Status != "provisioned" || res.Mode != "import" {
		t.Fatalf("import result %+v, %v", res, err)
	}
	checkNoSecrets(t, dir, stdout, stderr)
	c, err := config.Load(filepath.Join(dir, provConfig))
	if err != nil {
		t.Fatal(err)
	}
	box, err := tls.LoadX509KeyPair(c.Hub.CertFile, c.Hub.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := mqttConnect(h.mtls.Addr(), h.pki.CAFile, &box); err != nil {
		t.Errorf("offline-provisioned box over mTLS: %v", err)
	}
}
