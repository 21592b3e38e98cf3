package hubca_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/hubca"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
)

func newCA(t *testing.T) (*hubca.CA, *fakeclock.Clock, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	clk := fakeclock.New(time.Now())
	if err := hubca.Init(dir, hubca.Options{Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	ca, err := hubca.Open(dir, hubca.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return ca, clk, dir
}

func newCSR(t testing.TB, cn string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

func claims(t *testing.T, ca *hubca.CA, n int, ttl time.Duration, o hubca.ClaimOptions) []string {
	t.Helper()
	toks, err := ca.CreateClaims(n, ttl, o)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

const reqID = "0123456789abcdef0123456789abcdef"

func TestInitRefusesOverwriteAndModes(t *testing.T) {
	_, _, dir := newCA(t)
	before, err := os.ReadFile(filepath.Join(dir, hubca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := hubca.Init(dir, hubca.Options{}); !errors.Is(err, hubca.ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, hubca.KeyFile))
	if !bytes.Equal(before, after) {
		t.Fatal("ca.key changed")
	}
	st, err := os.Stat(filepath.Join(dir, hubca.KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v, %v", st.Mode(), err)
	}
	if err := os.Chmod(filepath.Join(dir, hubca.KeyFile), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := hubca.Open(dir, hubca.Options{}); !errors.Is(err, hubca.ErrKeyMode) {
		t.Errorf("Open with a group-readable key: %v", err)
	}
	if _, err := hubca.Open(t.TempDir(), hubca.Options{}); err == nil || !strings.Contains(err.Error(), "hubd ca init") {
		t.Errorf("Open of an empty dir: %v", err)
	}
}

func TestEnrol(t *testing.T) {
	ca, clk, dir := newCA(t)
	toks := claims(t, ca, 3, time.Hour, hubca.ClaimOptions{})
	if len(toks) != 3 || toks[0] == toks[1] || !strings.HasPrefix(toks[0], hubca.TokenPrefix) || len(toks[0]) < 32 {
		t.Fatalf("tokens %d, prefix/length wrong or repeated", len(toks))
	}
	// Only hashes are stored.
	st, _ := os.ReadFile(filepath.Join(dir, hubca.StateFile))
	for _, tok := range toks {
		if bytes.Contains(st, []byte(tok)) || bytes.Contains(st, []byte(strings.TrimPrefix(tok, hubca.TokenPrefix))) {
			t.Fatal("state.json holds a token")
		}
	}
	csr, key := newCSR(t, "box-1")
	certPEM, err := ca.Enrol(toks[0], reqID, csr, "box-1")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: clk.Now()}); err != nil {
		t.Errorf("certificate does not verify for client auth: %v", err)
	}
	if cert.Subject.CommonName != "box-1" || !key.PublicKey.Equal(cert.PublicKey) || cert.IsCA {
		t.Errorf("certificate CN %q, key match %v, CA %v", cert.Subject.CommonName, key.PublicKey.Equal(cert.PublicKey), cert.IsCA)
	}
	if d := cert.NotAfter.Sub(clk.Now()); d < 700*24*time.Hour || d > hubca.DefaultValidity {
		t.Errorf("validity %v", d)
	}

	// The same request asking again (its answer lost) gets the same certificate.
	again, err := ca.Enrol(toks[0], reqID, csr, "box-1")
	if err != nil || !bytes.Equal(again, certPEM) {
		t.Errorf("replay of the same request: %v, same cert %v", err, bytes.Equal(again, certPEM))
	}
	// Another request with the used token is refused, also after a reopen.
	csr2, _ := newCSR(t, "box-2")
	if _, err := ca.Enrol(toks[0], "another-request-0001", csr2, "box-2"); !errors.Is(err, hubca.ErrTokenUsed) {
		t.Errorf("reused token: %v, want ErrTokenUsed", err)
	}
	ca2, err := hubca.Open(dir, hubca.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca2.Enrol(toks[0], "another-request-0002", csr2, "box-2"); !errors.Is(err, hubca.ErrTokenUsed) {
		t.Errorf("reused token after reopen: %v, want ErrTokenUsed", err)
	}
	// box-1 has a live certificate: a fresh token cannot take it, and stays unused.
	csr1b, _ := newCSR(t, "box-1")
	if _, err := ca.Enrol(toks[1], "another-request-0003", csr1b, "box-1"); !errors.Is(err, hubca.ErrAgentTaken) {
		t.Errorf("second box-1: %v, want ErrAgentTaken", err)
	}
	if _, err := ca.Enrol(toks[1], "another-request-0004", csr2, "box-2"); err != nil {
		t.Errorf("token after an agent_taken refusal: %v", err)
	}
	// A re-enrolment token for box-1 replaces its certificate.
	re := claims(t, ca, 1, time.Hour, hubca.ClaimOptions{Agent: "box-1", Reenrol: true})
	if _, err := ca.Enrol(re[0], "another-request-0005", csr1b, "box-1"); err != nil {
		t.Errorf("re-enrolment: %v", err)
	}
	if is, err := ca.Issued("box-1"); err != nil || len(is) != 2 {
		t.Errorf("issued to box-1: %d, %v", len(is), err)
	}
	// Expired.
	clk.Advance(time.Hour)
	csr3, _ := newCSR(t, "box-3")
	if _, err := ca.Enrol(toks[2], "another-request-0006", csr3, "box-3"); !errors.Is(err, hubca.ErrTokenExpired) {
		t.Errorf("expired token: %v, want ErrTokenExpired", err)
	}
	if _, err := ca.Enrol("kec_nosuchtoken", "another-request-0007", csr3, "box-3"); !errors.Is(err, hubca.ErrTokenUnknown) {
		t.Errorf("unknown token: %v", err)
	}
	cl, err := ca.Claims()
	if err != nil || len(cl) != 4 || cl[0].UsedBy != "box-1" || cl[2].Used != nil {
		t.Errorf("claims %+v, %v", cl, err)
	}
}

func TestEnrolRefusals(t *testing.T) {
	ca, _, _ := newCA(t)
	bound := claims(t, ca, 1, time.Hour, hubca.ClaimOptions{Agent: "box-9"})
	csr, _ := newCSR(t, "box-1")
	if _, err := ca.Enrol(bound[0], reqID, csr, "box-1"); !errors.Is(err, hubca.ErrTokenUnknown) {
		t.Errorf("token for another agent: %v", err)
	}
	tok := claims(t, ca, 1, time.Hour, hubca.ClaimOptions{})[0]
	other, _ := newCSR(t, "box-2")
	badCN, _ := newCSR(t, "$enrol")
	tampered := bytes.Clone(csr)
	blk, _ := pem.Decode(tampered)
	blk.Bytes[len(blk.Bytes)-3] ^= 0xff // the signature
	tampered = pem.EncodeToMemory(blk)
	for name, c := range map[string][]byte{
		"names another agent": other,
		"invalid agent id":    badCN,
		"bad signature":       tampered,
		"not pem":             []byte("hello"),
	} {
		if _, err := ca.Enrol(tok, reqID, c, "box-1"); !errors.Is(err, hubca.ErrBadCSR) {
			t.Errorf("%s: %v, want ErrBadCSR", name, err)
		}
	}
	// None of that used the token.
	if _, err := ca.Enrol(tok, reqID, csr, "box-1"); err != nil {
		t.Errorf("token after bad CSRs: %v", err)
	}
	if _, err := ca.CreateClaims(1, time.Hour, hubca.ClaimOptions{Reenrol: true}); !errors.Is(err, hubca.ErrOptions) {
		t.Errorf("reenrol without agent: %v", err)
	}
	if _, err := ca.CreateClaims(0, time.Hour, hubca.ClaimOptions{}); !errors.Is(err, hubca.ErrOptions) {
		t.Errorf("count 0: %v", err)
	}
}

// Many requests, from two CA instances on one directory (as two processes
// would), race for one token: exactly one wins.
func TestEnrolConcurrentOneToken(t *testing.T) {
	ca, clk, dir := newCA(t)
	ca2, err := hubca.Open(dir, hubca.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := claims(t, ca, 1, time.Hour, hubca.ClaimOptions{})[0]
	const n = 8
	csrs := make([][]byte, n)
	for i := range csrs {
		csrs[i], _ = newCSR(t, "box-"+string(rune('a'+i)))
	}
	var ok, used atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		c := ca
		if i%2 == 1 {
			c = ca2
		}
		wg.Go(func() {
			_, err := c.Enrol(tok, "concurrent-request-"+string(rune('a'+i)), csrs[i], "box-"+string(rune('a'+i)))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, hubca.ErrTokenUsed):
				used.Add(1)
			default:
				t.Errorf("request %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || used.Load() != n-1 {
		t.Errorf("%d succeeded, %d refused as used; want 1 and %d", ok.Load(), used.Load(), n-1)
	}
}

func TestSignOffline(t *testing.T) {
	ca, _, _ := newCA(t)
	csr, _ := newCSR(t, "gate-7")
	certPEM, agent, err := ca.SignOffline(csr, false)
	if err != nil || agent != "gate-7" || len(certPEM) == 0 {
		t.Fatalf("sign: %q, %v", agent, err)
	}
	if _, _, err := ca.SignOffline(csr, false); !errors.Is(err, hubca.ErrAgentTaken) {
		t.Errorf("second sign: %v, want ErrAgentTaken", err)
	}
	if _, _, err := ca.SignOffline(csr, true); err != nil {
		t.Errorf("re-enrol sign: %v", err)
	}
}

// fakeTransport delivers published messages to a channel.
type fakeTransport struct {
	handler    func(string, []byte)
	subscribed chan struct{} // closed by Subscribe
	pub        chan hub.Message
}

func (f *fakeTransport) Subscribe(filter string, qos byte, h func(string, []byte)) error {
	f.handler = h
	close(f.subscribed)
	return nil
}

func (f *fakeTransport) PublishAsync(m hub.Message) <-chan error {
	f.pub <- m
	ch := make(chan error, 1)
	ch <- nil
	return ch
}

func (f *fakeTransport) deliver(t *testing.T, topic string, b []byte) {
	t.Helper()
	<-f.subscribed
	f.handler(topic, b)
}

func TestResponder(t *testing.T) {
	ca, _, _ := newCA(t)
	tok := claims(t, ca, 1, time.Hour, hubca.ClaimOptions{})[0]
	tr := &fakeTransport{pub: make(chan hub.Message, 8), subscribed: make(chan struct{})}
	r, err := hubca.NewResponder(hubca.ResponderOptions{CA: ca, Root: "ke", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	csr, _ := newCSR(t, "box-1")
	ask := func(id string, token string) wire.EnrolResponse {
		t.Helper()
		b, err := wire.EncodeEnrolRequest(wire.EnrolRequest{ID: id, Agent: "box-1", Token: token, CSR: string(csr)})
		if err != nil {
			t.Fatal(err)
		}
		tr.deliver(t, wire.EnrolRequestTopic("ke", id), b)
		m := <-tr.pub
		if m.Topic != wire.EnrolResponseTopic("ke", id) || m.QoS != 1 || m.Retained {
			t.Fatalf("response on %q qos %d retained %v", m.Topic, m.QoS, m.Retained)
		}
		if bytes.Contains(m.Payload, []byte(token)) {
			t.Fatal("response carries the token")
		}
		resp, err := wire.DecodeEnrolResponse(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := ask(reqID, tok); !resp.OK || !strings.Contains(resp.CA, "BEGIN CERTIFICATE") {
		t.Fatalf("first request: %+v", resp)
	}
	resp := ask("second-request-000001", tok)
	if resp.OK || resp.Code != wire.EnrolTokenUsed || !strings.Contains(resp.Message, "hubd claim create") {
		t.Errorf("reused token: %+v", resp)
	}
	// A request whose body id differs from its topic's is refused as bad.
	b, _ := json.Marshal(wire.EnrolRequest{V: 1, ID: "body-id-000000000001", Agent: "box-1", Token: tok, CSR: string(csr)})
	tr.deliver(t, wire.EnrolRequestTopic("ke", "topic-id-00000000001"), b)
	if resp, _ := wire.DecodeEnrolResponse((<-tr.pub).Payload); resp.Code != wire.EnrolBadRequest {
		t.Errorf("mismatched id: %+v", resp)
	}
	// The responder counts a response once its publish has completed,
	// which may be just after the test received it.
	st := r.Stats()
	for deadline := time.Now().Add(5 * time.Second); (st.Issued+st.Refused < 3) && time.Now().Before(deadline); st = r.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.Requests != 3 || st.Issued != 1 || st.Refused != 2 {
		t.Errorf("stats %+v", st)
	}
}
