package main

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubca"
)

// caCmd runs "hubd ca init|sign" (firmware-specs/enrolment.md §2, §6).
func caCmd(args []string, stderr io.Writer) error { return caRun(args, os.Stdout, stderr) }

// claimCmd runs "hubd claim create|list" (enrolment.md §2).
func claimCmd(args []string, stderr io.Writer) error { return claimRun(args, os.Stdout, stderr) }

const (
	caUsage    = "usage: hubd ca init -dir DIR | hubd ca sign -dir DIR -csr box.csr -out box.pem [-reenrol]"
	claimUsage = "usage: hubd claim create -dir DIR -count N -expires 72h [-agent ID [-reenrol]] | hubd claim list -dir DIR"
)

func caRun(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(caUsage)
	}
	switch args[0] {
	case "init":
		return caInit(args[1:], stderr)
	case "sign":
		return caSign(args[1:], stdout, stderr)
	}
	return fmt.Errorf("ca: unknown subcommand %q; %s", args[0], caUsage)
}

// caInit writes DIR/ca.key (0600) and DIR/ca.pem; it never overwrites.
func caInit(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd ca init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for the CA (created 0700); required")
	name := fs.String("name", "KioskEdge box CA", "the CA certificate's common name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 0 {
		return errors.New("ca init: -dir DIR is required, nothing else")
	}
	if err := hubca.Init(*dir, hubca.Options{Name: *name}); err != nil {
		if errors.Is(err, hubca.ErrExists) {
			return fmt.Errorf("ca init: %w; not overwriting a CA", err)
		}
		return fmt.Errorf("ca init: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s/%s (private, stays on the hub) and %s/%s (the broker's client CA: require_certificate with cafile = it)\n",
		*dir, hubca.KeyFile, *dir, hubca.CertFile)
	return nil
}

// caSign signs a box's CSR brought to the hub (offline enrolment) and
// writes the certificate followed by the CA certificate to -out.
func caSign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd ca sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the CA directory (hubd ca init); required")
	csrPath := fs.String("csr", "", "the box's certificate request (kioskctl provision --offline wrote box.csr); required")
	out := fs.String("out", "", "file to write the box certificate and the CA certificate to; required, not overwritten")
	reenrol := fs.Bool("reenrol", false, "replace the agent's live certificate (a box whose key was lost)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *csrPath == "" || *out == "" || fs.NArg() != 0 {
		return errors.New("ca sign: -dir, -csr and -out are required")
	}
	ca, err := hubca.Open(*dir, hubca.Options{})
	if err != nil {
		return fmt.Errorf("ca sign: %w", err)
	}
	csr, err := os.ReadFile(*csrPath)
	if err != nil {
		return fmt.Errorf("ca sign: %w", err)
	}
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("ca sign: %s exists; not overwriting", *out)
	}
	certPEM, agent, err := ca.SignOffline(csr, *reenrol)
	if errors.Is(err, hubca.ErrAgentTaken) {
		return fmt.Errorf("ca sign: %w; check the agent id, or pass -reenrol to replace it", err)
	}
	if err != nil {
		return fmt.Errorf("ca sign: %w", err)
	}
	if err := writeNewFile(*out, append(certPEM, ca.CertPEM()...), 0o644); err != nil {
		return fmt.Errorf("ca sign: %w (the certificate is recorded; sign again with -reenrol)", err)
	}
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("ca sign: %w", err)
	}
	fmt.Fprintf(stdout, "signed agent %s: serial %s, valid until %s, written to %s\n", agent,
		hex.EncodeToString(cert.SerialNumber.Bytes()), cert.NotAfter.UTC().Format(time.RFC3339), *out)
	fmt.Fprintf(stderr, "take %s back to the box: kioskctl provision --dir /etc/kioskedge --import-cert %s\n", *out, *out)
	return nil
}

func claimRun(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(claimUsage)
	}
	switch args[0] {
	case "create":
		return claimCreate(args[1:], stdout, stderr)
	case "list":
		return claimList(args[1:], stdout, stderr)
	}
	return fmt.Errorf("claim: unknown subcommand %q; %s", args[0], claimUsage)
}

// claimCreate prints N new one-time tokens, one a line, on stdout; only
// their hashes are kept, so this is the only time they are shown.
func claimCreate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd claim create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the CA directory (hubd ca init); required")
	count := fs.Int("count", 1, "how many tokens")
	expires := fs.Duration("expires", 72*time.Hour, "how long the tokens stay valid")
	agent := fs.String("agent", "", "make the tokens valid for this agent id only")
	reenrol := fs.Bool("reenrol", false, "let the token replace -agent's live certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 0 {
		return errors.New("claim create: -dir DIR is required")
	}
	ca, err := hubca.Open(*dir, hubca.Options{})
	if err != nil {
		return fmt.Errorf("claim create: %w", err)
	}
	toks, err := ca.CreateClaims(*count, *expires, hubca.ClaimOptions{Agent: *agent, Reenrol: *reenrol})
	if err != nil {
		return fmt.Errorf("claim create: %w", err)
	}
	fmt.Fprintln(stdout, strings.Join(toks, "\n"))
	fmt.Fprintf(stderr, "%d one-time claim token(s), valid until %s; they are not stored and cannot be shown again\n",
		len(toks), time.Now().Add(*expires).UTC().Format(time.RFC3339))
	return nil
}

// claimList shows every token's state, never the token.
func claimList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd claim list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the CA directory (hubd ca init); required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 0 {
		return errors.New("claim list: -dir DIR is required")
	}
	ca, err := hubca.Open(*dir, hubca.Options{})
	if err != nil {
		return fmt.Errorf("claim list: %w", err)
	}
	cl, err := ca.Claims()
	if err != nil {
		return fmt.Errorf("claim list: %w", err)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CREATED\tEXPIRES\tFOR AGENT\tSTATE")
	now := time.Now()
	for _, c := range cl {
		st := "unused"
		switch {
		case c.Used != nil:
			st = "used by " + c.UsedBy + " at " + c.Used.UTC().Format(time.RFC3339)
		case !now.Before(c.Expires):
			st = "expired"
		}
		who := c.Agent
		if who == "" {
			who = "any"
		}
		if c.Reenrol {
			who += " (re-enrolment)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Created.UTC().Format(time.RFC3339), c.Expires.UTC().Format(time.RFC3339), who, st)
	}
	return w.Flush()
}
