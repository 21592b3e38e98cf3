package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Files "kioskctl provision" writes in --dir (firmware-specs/enrolment.md §7).
const (
	provKey      = "box.key" // the box's private key, 0600, never leaves the box
	provCSR      = "box.csr"
	provCert     = "box.pem"
	provBoxCA    = "box-ca.pem" // the CA that signed box.pem (the broker's client CA)
	provHubCA    = "hub-ca.pem" // verifies the broker's server certificate
	provCmdPub   = "cmd.pub"
	provSiteKey  = "site.key" // 0600
	provHubPub   = "hub.pub"
	provState    = "provision.json"
	provConfig   = "kioskd.toml"
	provIdentity = "identity.toml"
)

func provisionFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("kioskctl provision", flag.ContinueOnError)
	fs.String("dir", "/etc/kioskedge", "directory for the box's identity files and kioskd.toml")
	fs.String("agent", "", "the box's agent id (unique in the province); required")
	fs.String("site", "", "where the box stands, free text")
	fs.String("region", "", "administrative region code of the site (6, 9 or 12 digits)")
	fs.String("hub", "", "the hub's broker for the agent, ssl://host:8883; required")
	fs.String("root", "", "topic root, e.g. kioskedge/prov-a; required")
	fs.String("hub-ca", "", "CA certificate (PEM) that verifies the broker's server certificate; required")
	fs.String("command-key", "", "the hub's command-signing public key (hubd cmd keygen's cmd.pub); required")
	fs.String("site-key", "", "the site key file for credential hashing, from the hub; required")
	fs.String("hub-public-key", "", "the hub's sealing public key (hubd keygen's hub.pub); optional")
	fs.String("data-dir", "/var/lib/kioskedge", "the agent's data directory")
	fs.String("claim", "", "one-time claim token: enrol online now")
	fs.String("claim-file", "", "read the claim token from this file (keeps it out of the process list and shell history)")
	fs.Bool("offline", false, "write box.csr and stop, to be signed at the hub (hubd ca sign)")
	fs.String("import-cert", "", "finish an offline enrolment with the certificate hubd ca sign wrote")
	fs.String("enrol-broker", "", "broker URL for enrolment [--hub]")
	fs.Bool("enrol-plaintext", false, "allow a tcp:// enrolment broker (lab only)")
	fs.Duration("timeout", time.Minute, "how long to wait for the hub's answer")
	return fs
}

// provisionResult is what provision prints.
type provisionResult struct {
	Agent    string   `json:"agent"`
	Mode     string   `json:"mode"`   // online, offline or import
	Status   string   `json:"status"` // "provisioned" or "csr_written"
	Dir      string   `json:"dir"`
	Files    []string `json:"files"`
	Config   string   `json:"config,omitempty"`   // kioskd.toml written
	Identity string   `json:"identity,omitempty"` // identity.toml written beside an existing kioskd.toml
	Serial   string   `json:"serial,omitempty"`
	NotAfter string   `json:"not_after,omitempty"`
	Next     string   `json:"next,omitempty"`
}

// provisionState is provision.json: what the later --import-cert needs.
type provisionState struct {
	Agent        string `json:"agent"`
	Site         string `json:"site,omitempty"`
	Region       string `json:"region,omitempty"`
	Hub          string `json:"hub"`
	Root         string `json:"root"`
	DataDir      string `json:"data_dir"`
	HubPublicKey bool   `json:"hub_public_key,omitempty"`
	RequestID    string `json:"request_id"`
}

// runProvision gives the box its identity (enrolment.md §7). Exit 0 when
// done, 2 for bad usage, 3 when it could not: a file, the hub, or the hub
// refused (the message says why and what to do).
func runProvision(ctx context.Context, e *env, args []string) int {
	fs := provisionFlags()
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return fail(e, "provision", exitUsage, "unexpected arguments %q", fs.Args())
	}
	str := func(n string) string { return fs.Lookup(n).Value.String() }
	dir := str("dir")
	if imp := str("import-cert"); imp != "" {
		if str("claim") != "" || str("claim-file") != "" || str("offline") == "true" {
			return fail(e, "provision", exitUsage, "--import-cert finishes an offline enrolment; it goes without --claim and --offline")
		}
		return provisionImport(e, dir, imp)
	}
	st := provisionState{Agent: str("agent"), Site: str("site"), Region: str("region"), Hub: str("hub"),
		Root: str("root"), DataDir: str("data-dir")}
	claim, offline := str("claim"), str("offline") == "true"
	if f := str("claim-file"); f != "" {
		if claim != "" {
			return fail(e, "provision", exitUsage, "--claim and --claim-file: give one")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fail(e, "provision", exitUnusable, "--claim-file: %v", err)
		}
		if claim = strings.TrimSpace(string(b)); claim == "" {
			return fail(e, "provision", exitUsage, "--claim-file %s is empty", f)
		}
	}
	if (claim == "") == !offline {
		return fail(e, "provision", exitUsage, "give either --claim TOKEN or --claim-file FILE (online), or --offline")
	}
	for _, req := range []string{"agent", "hub", "root", "hub-ca", "command-key", "site-key"} {
		if str(req) == "" {
			return fail(e, "provision", exitUsage, "--%s is required (kioskctl provision -h lists the flags)", req)
		}
	}
	var err error
	if dir, err = filepath.Abs(dir); err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	hubPub := str("hub-public-key")
	st.HubPublicKey = hubPub != ""
	// The config the box will have, checked now so a typo stops here.
	if _, err := config.Parse([]byte(st.config(dir)), ""); err != nil {
		return fail(e, "provision", exitUsage, "%s", strings.ReplaceAll(strings.TrimPrefix(err.Error(), config.ErrInvalid.Error()+":"), "\n  ", "; "))
	}
	if _, err := os.Stat(filepath.Join(dir, provCert)); err == nil {
		return fail(e, "provision", exitUnusable, "%s already holds box.pem: this box is provisioned; to re-enrol, move box.key, box.csr and box.pem away first", dir)
	}
	inputs, err := readInputs(str("hub-ca"), str("command-key"), str("site-key"), hubPub)
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	// A retry after an unanswered enrolment keeps the request id and the
	// CSR, so the hub recognises it (enrolment.md §4.3).
	if old, err := readState(dir); err == nil && old.Agent == st.Agent {
		st.RequestID = old.RequestID
	}
	if st.RequestID == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return fail(e, "provision", exitUnusable, "%v", err)
		}
		st.RequestID = hex.EncodeToString(b)
	}
	files, err := writeInputs(dir, inputs)
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	key, err := boxKey(dir)
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	csrPEM, err := boxCSR(dir, key, st.Agent)
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	if err := writeState(dir, st); err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	files = append(files, provKey, provCSR, provState)
	if offline {
		res := provisionResult{Agent: st.Agent, Mode: "offline", Status: "csr_written", Dir: dir, Files: files,
			Next: fmt.Sprintf("bring %s to the hub: hubd ca sign -dir CA -csr box.csr -out box.pem; then here: kioskctl provision --dir %s --import-cert box.pem",
				filepath.Join(dir, provCSR), dir)}
		return printProvision(e, res)
	}
	enrolURL := str("enrol-broker")
	if enrolURL == "" {
		enrolURL = st.Hub
	}
	timeout, _ := time.ParseDuration(str("timeout")) // the flag parsed it already
	resp, err := enrolOnline(ctx, enrolRequest{broker: enrolURL, plaintext: str("enrol-plaintext") == "true",
		caFile: filepath.Join(dir, provHubCA), root: st.Root, id: st.RequestID, agent: st.Agent, token: claim,
		csr: csrPEM, timeout: timeout})
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	if !resp.OK {
		return fail(e, "provision", exitUnusable, "%s", refusalMessage(resp))
	}
	res, err := finishProvision(dir, st, key, []byte(resp.Cert), []byte(resp.CA))
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	res.Mode, res.Files = "online", append(files, res.Files...)
	return printProvision(e, res)
}

// refusalMessage says what a refusal means and what to do (enrolment.md §5).
func refusalMessage(r wire.EnrolResponse) string {
	switch r.Code {
	case wire.EnrolTokenUsed:
		return "claim token already used: ask the operations team for a new one (hubd claim create)"
	case wire.EnrolTokenExpired:
		return "claim token expired: ask the operations team for a new one (hubd claim create)"
	case wire.EnrolTokenUnknown:
		return "claim token not known to the hub: check it was typed right and is for this hub and agent, or ask for a new one (hubd claim create)"
	case wire.EnrolAgentTaken:
		return "the hub refused: " + r.Message
	case wire.EnrolBadCSR:
		return "the hub refused the certificate request (" + r.Message + "): check --agent, then run provision again"
	}
	return fmt.Sprintf("the hub refused (%s): %s", r.Code, r.Message)
}

func printProvision(e *env, res provisionResult) int {
	if e.JSON {
		return printJSON(e, res)
	}
	rows := [][]string{{"agent", res.Agent}, {"mode", res.Mode}, {"status", res.Status}, {"dir", res.Dir},
		{"files", strings.Join(res.Files, " ")}}
	if res.Serial != "" {
		rows = append(rows, []string{"certificate", "serial " + res.Serial + ", valid until " + res.NotAfter})
	}
	if res.Config != "" {
		rows = append(rows, []string{"config", res.Config})
	}
	if res.Identity != "" {
		rows = append(rows, []string{"identity", res.Identity})
	}
	table(e, []string{"KEY", "VALUE"}, rows)
	if res.Next != "" {
		fmt.Fprintln(e.Stdout, "\nnext:", res.Next)
	}
	return exitOK
}

// inputs are the hub-given files, read and checked.
type inputs struct {
	hubCA, cmdPub, siteKey, hubPub []byte
}

func readInputs(hubCA, cmdKey, siteKey, hubPub string) (inputs, error) {
	var in inputs
	var err error
	if in.hubCA, err = os.ReadFile(hubCA); err != nil {
		return in, fmt.Errorf("--hub-ca: %w", err)
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(in.hubCA) {
		return in, fmt.Errorf("--hub-ca: %s holds no PEM certificate", hubCA)
	}
	if in.cmdPub, err = os.ReadFile(cmdKey); err != nil {
		return in, fmt.Errorf("--command-key: %w", err)
	}
	if _, err := wire.ParseCommandPublicKey(in.cmdPub); err != nil {
		return in, fmt.Errorf("--command-key: %s: %w (want hubd cmd keygen's cmd.pub)", cmdKey, err)
	}
	key, err := privacy.LoadSiteKey(siteKey)
	if err != nil {
		return in, fmt.Errorf("--site-key: %w", err)
	}
	in.siteKey = []byte(hex.EncodeToString(key) + "\n")
	if hubPub != "" {
		if _, err := sealed.LoadPublicKey(hubPub); err != nil {
			return in, fmt.Errorf("--hub-public-key: %w", err)
		}
		if in.hubPub, err = os.ReadFile(hubPub); err != nil {
			return in, fmt.Errorf("--hub-public-key: %w", err)
		}
	}
	return in, nil
}

// writeInputs copies the hub-given files into dir (the site key 0600).
func writeInputs(dir string, in inputs) ([]string, error) {
	files := []string{provHubCA, provCmdPub, provSiteKey}
	if err := replaceFile(filepath.Join(dir, provHubCA), in.hubCA, 0o644); err != nil {
		return nil, err
	}
	if err := replaceFile(filepath.Join(dir, provCmdPub), in.cmdPub, 0o644); err != nil {
		return nil, err
	}
	if err := replaceFile(filepath.Join(dir, provSiteKey), in.siteKey, 0o600); err != nil {
		return nil, err
	}
	if in.hubPub != nil {
		if err := replaceFile(filepath.Join(dir, provHubPub), in.hubPub, 0o644); err != nil {
			return nil, err
		}
		files = append(files, provHubPub)
	}
	return files, nil
}

// replaceFile writes path atomically (temporary file with mode, fsync,
// rename), so copying a file onto itself keeps it whole.
func replaceFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := writeExcl(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func writeExcl(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close() // the write error is the one to report
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// boxKey loads dir/box.key, or creates it: a new ECDSA P-256 key written
// with mode 0600 (O_EXCL, never over another key). An existing key
// readable by others is refused.
func boxKey(dir string) (*ecdsa.PrivateKey, error) {
	path := filepath.Join(dir, provKey)
	if st, err := os.Stat(path); err == nil {
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s is readable by others (mode %04o): it may have leaked; remove it and provision again", path, st.Mode().Perm())
		}
		return loadBoxKey(path)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeExcl(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("writing the box key: %w", err)
	}
	return key, syncDir(dir)
}

func loadBoxKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s holds no PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PKCS#8 key", path) // the parse error could quote key bytes
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an ECDSA key", path)
	}
	return key, nil
}

// boxCSR returns dir/box.csr if it is for key and agent, or writes a new
// one.
func boxCSR(dir string, key *ecdsa.PrivateKey, agent string) ([]byte, error) {
	path := filepath.Join(dir, provCSR)
	if b, err := os.ReadFile(path); err == nil {
		if blk, _ := pem.Decode(b); blk != nil {
			if csr, err := x509.ParseCertificateRequest(blk.Bytes); err == nil &&
				csr.Subject.CommonName == agent && key.PublicKey.Equal(csr.PublicKey) {
				return b, nil
			}
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: agent}}, key)
	if err != nil {
		return nil, err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	return b, replaceFile(path, b, 0o644)
}

func readState(dir string) (provisionState, error) {
	var st provisionState
	b, err := os.ReadFile(filepath.Join(dir, provState))
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

func writeState(dir string, st provisionState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return replaceFile(filepath.Join(dir, provState), append(b, '\n'), 0o644)
}

// config is the kioskd.toml the box gets (enrolment.md §7): TLS with the
// box's certificate, never plaintext.
func (st provisionState) config(dir string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // a JSON string is a TOML basic string
	p := func(f string) string { return q(filepath.Join(dir, f)) }
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by kioskctl provision: the box's identity (firmware-specs/enrolment.md).\n")
	fmt.Fprintf(&b, "[agent]\nid = %s\ndata_dir = %s\n", q(st.Agent), q(st.DataDir))
	if st.Site != "" {
		fmt.Fprintf(&b, "site = %s\n", q(st.Site))
	}
	if st.Region != "" {
		fmt.Fprintf(&b, "region = %s\n", q(st.Region))
	}
	fmt.Fprintf(&b, "\n[hub]\nbroker = %s\nroot = %s\nca_file = %s\ncert_file = %s\nkey_file = %s\n",
		q(st.Hub), q(st.Root), p(provHubCA), p(provCert), p(provKey))
	fmt.Fprintf(&b, "\n[privacy]\nsite_key_file = %s\n", p(provSiteKey))
	if st.HubPublicKey {
		fmt.Fprintf(&b, "hub_public_key_file = %s\n", p(provHubPub))
	}
	fmt.Fprintf(&b, "\n[gate]\ncommand_key_file = %s\n", p(provCmdPub))
	return b.String()
}

// provisionImport finishes an offline enrolment with the file hubd ca
// sign wrote: the box certificate followed by the CA certificate.
func provisionImport(e *env, dir, certFile string) int {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	st, err := readState(dir)
	if err != nil {
		return fail(e, "provision", exitUnusable, "%s: %v (run kioskctl provision --offline with the same --dir first)", filepath.Join(dir, provState), err)
	}
	key, err := loadBoxKey(filepath.Join(dir, provKey))
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return fail(e, "provision", exitUnusable, "--import-cert: %v", err)
	}
	var certs [][]byte
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			certs = append(certs, pem.EncodeToMemory(blk))
		}
	}
	if len(certs) != 2 {
		return fail(e, "provision", exitUnusable, "--import-cert: %s holds %d certificates; want the box's then the CA's, as hubd ca sign writes them", certFile, len(certs))
	}
	res, err := finishProvision(dir, st, key, certs[0], certs[1])
	if err != nil {
		return fail(e, "provision", exitUnusable, "%v", err)
	}
	res.Mode = "import"
	return printProvision(e, res)
}

// finishProvision checks the certificate against the box key, the agent
// and the CA, writes box.pem, box-ca.pem and the config.
func finishProvision(dir string, st provisionState, key *ecdsa.PrivateKey, certPEM, caPEM []byte) (provisionResult, error) {
	var res provisionResult
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return res, errors.New("the hub's answer holds no certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return res, fmt.Errorf("the certificate does not parse: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return res, fmt.Errorf("the certificate is not for this box's key (%s): was it signed from another box's box.csr?", filepath.Join(dir, provKey))
	}
	if cert.Subject.CommonName != st.Agent {
		return res, fmt.Errorf("the certificate names agent %q, this box is %q", cert.Subject.CommonName, st.Agent)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return res, errors.New("no CA certificate came with the box certificate")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return res, fmt.Errorf("the certificate does not verify against its CA for client use: %w (is the box clock right? date -u)", err)
	}
	if err := replaceFile(filepath.Join(dir, provBoxCA), caPEM, 0o644); err != nil {
		return res, err
	}
	if err := replaceFile(filepath.Join(dir, provCert), certPEM, 0o644); err != nil {
		return res, err
	}
	res = provisionResult{Agent: st.Agent, Status: "provisioned", Dir: dir, Files: []string{provCert, provBoxCA},
		Serial: hex.EncodeToString(cert.SerialNumber.Bytes()), NotAfter: cert.NotAfter.UTC().Format(time.RFC3339)}
	conf := st.config(dir)
	if _, err := config.Parse([]byte(conf), ""); err != nil {
		return res, fmt.Errorf("the generated config is invalid: %w", err)
	}
	cfgPath := filepath.Join(dir, provConfig)
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		if err := replaceFile(cfgPath, []byte(conf), 0o644); err != nil {
			return res, err
		}
		res.Config = cfgPath
		res.Next = "start the agent: systemctl restart kioskd"
		return res, nil
	}
	idPath := filepath.Join(dir, provIdentity)
	if err := replaceFile(idPath, []byte(conf), 0o644); err != nil {
		return res, err
	}
	res.Identity = idPath
	res.Next = fmt.Sprintf("%s exists and was left alone: copy into it from %s the keys agent.id, agent.site, agent.region, hub.broker, hub.root, hub.ca_file, hub.cert_file, hub.key_file, privacy.site_key_file, privacy.hub_public_key_file, gate.command_key_file; remove hub.plaintext; then kioskctl config check and systemctl restart kioskd",
		cfgPath, idPath)
	return res, nil
}

// enrolRequest is one online enrolment.
type enrolRequest struct {
	broker    string
	plaintext bool
	caFile    string
	root      string
	id        string
	agent     string
	token     string
	csr       []byte
	timeout   time.Duration
	resend    time.Duration // 0: enrolResend
}

// enrolResend is how often an unanswered request is sent again: a request
// published while the hub was not subscribed is lost (it is not retained).
const enrolResend = 5 * time.Second

// enrolOnline connects to the enrolment broker without a client
// certificate, subscribes to the response topic, publishes the request
// (again after each reconnect and every resend interval: the hub answers a
// repeated request with the same certificate) and waits for the answer
// (enrolment.md §4.3).
func enrolOnline(ctx context.Context, r enrolRequest) (wire.EnrolResponse, error) {
	u, err := url.Parse(r.broker)
	if err != nil {
		return wire.EnrolResponse{}, fmt.Errorf("enrolment broker %q: %w", r.broker, err)
	}
	req, err := wire.EncodeEnrolRequest(wire.EnrolRequest{ID: r.id, Agent: r.agent, Token: r.token, CSR: string(r.csr)})
	if err != nil {
		return wire.EnrolResponse{}, errors.New("the claim token is malformed: it is letters, digits, '_' and '-' (kec_…)") // never echo it
	}
	opts := uplink.SessionOptions{
		Broker:   r.broker,
		ClientID: "kioskedge-enrol-" + r.id[:16],
		Backoff:  uplink.Backoff{Min: 500 * time.Millisecond, Max: 5 * time.Second, StableAfter: time.Minute},
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		if !r.plaintext {
			return wire.EnrolResponse{}, fmt.Errorf("enrolment broker %q is plaintext: the claim token would cross the network in clear; use ssl://, or --enrol-plaintext in a lab", r.broker)
		}
		opts.AllowPlaintext = true
	default:
		opts.TLS = &uplink.TLSFiles{CAFile: r.caFile, NoClientCert: true}
	}
	answers := make(chan []byte, 4)
	respTopic := wire.EnrolResponseTopic(r.root, r.id)
	var (
		mu      sync.Mutex
		lastErr error
	)
	setErr := func(err error) { mu.Lock(); lastErr = err; mu.Unlock() }
	opts.OnConnect = func(ctx context.Context, s *uplink.Session) {
		// Subscriptions are renewed before OnConnect, so the answer cannot
		// come before we listen.
		if err := s.Publish(ctx, uplink.Message{Topic: wire.EnrolRequestTopic(r.root, r.id), QoS: 1, Payload: req}); err != nil {
			setErr(err)
		}
	}
	opts.OnConnectionLost = setErr
	sess, err := uplink.NewSession(opts)
	if err != nil {
		return wire.EnrolResponse{}, fmt.Errorf("enrolment broker: %w", err)
	}
	if err := sess.Subscribe(respTopic, 1, func(_ string, b []byte) {
		select {
		case answers <- b:
		default:
		}
	}); err != nil {
		return wire.EnrolResponse{}, fmt.Errorf("enrolment broker: %w", err)
	}
	runCtx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sess.Run(runCtx) }()
	defer func() {
		cancel()
		// Run ends with runCtx and disconnects; its error says nothing the
		// caller needs once it has an answer or a timeout.
		<-done
	}()
	resend := r.resend
	if resend <= 0 {
		resend = enrolResend
	}
	tick := time.NewTicker(resend)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if sess.Connected() {
				// The outcome shows as an answer or its absence.
				sess.PublishAsync(uplink.Message{Topic: wire.EnrolRequestTopic(r.root, r.id), QoS: 1, Payload: req})
			}
		case b := <-answers:
			resp, err := wire.DecodeEnrolResponse(b)
			if err != nil || resp.ID != r.id {
				continue // not our answer, or garbage: keep waiting
			}
			return resp, nil
		case <-runCtx.Done():
			st := sess.Stats()
			if ctx.Err() != nil {
				return wire.EnrolResponse{}, ctx.Err()
			}
			if st.Connects == 0 {
				return wire.EnrolResponse{}, fmt.Errorf("could not connect to the enrolment broker %s within %v: check the network, the address and --hub-ca; or enrol offline (--offline)", r.broker, r.timeout)
			}
			msg := fmt.Sprintf("no answer from the hub within %v: is hubd running with -enrol-ca and the same --root %q? try again (the same token is fine), or enrol offline (--offline)", r.timeout, r.root)
			mu.Lock()
			if lastErr != nil && !strings.Contains(lastErr.Error(), r.token) {
				msg += " (last error: " + lastErr.Error() + ")"
			}
			mu.Unlock()
			return wire.EnrolResponse{}, errors.New(msg)
		}
	}
}
