package hubca

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"

	"github.com/kioskedge/kioskedge/sync/internal/atomicfile"
)

// TokenPrefix starts every claim token, so a leaked one is recognisable.
const TokenPrefix = "kec_"

// tokenBytes is the random part of a token: 160 bits.
const tokenBytes = 20

// MaxClaims bounds CreateClaims' count.
const MaxClaims = 10000

var tokenEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

// state is state.json (enrolment.md §2).
type state struct {
	Tokens []tokenRecord  `json:"tokens"`
	Issued []issuedRecord `json:"issued"`
}

type tokenRecord struct {
	Hash    string    `json:"sha256"` // of the whole token string
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Agent   string    `json:"agent,omitempty"` // only this agent may use it
	Reenrol bool      `json:"reenrol,omitempty"`
	// Set once used.
	Used    *time.Time `json:"used,omitempty"`
	UsedBy  string     `json:"used_by,omitempty"`
	Request string     `json:"request,omitempty"`    // the request id that used it
	CSRHash string     `json:"csr_sha256,omitempty"` // of the CSR it signed
	Serial  string     `json:"serial,omitempty"`     // of the certificate issued
}

type issuedRecord struct {
	Agent    string    `json:"agent"`
	Serial   string    `json:"serial"`
	Issued   time.Time `json:"issued"`
	NotAfter time.Time `json:"not_after"`
	Via      string    `json:"via"` // "claim" or "offline"
	Cert     string    `json:"cert"`
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// ClaimOptions restrict the tokens CreateClaims makes.
type ClaimOptions struct {
	// Agent, if set, is the only agent the tokens enrol.
	Agent string
	// Reenrol lets the token replace the live certificate of Agent (a box
	// whose key was lost or replaced); it needs Agent.
	Reenrol bool
}

// CreateClaims makes n one-time claim tokens valid for ttl and returns
// them; only their SHA-256 is stored, so this is the one time they can be
// read. It returns ErrOptions for n outside 1..MaxClaims, a non-positive
// ttl, an invalid Agent or Reenrol without Agent.
func (c *CA) CreateClaims(n int, ttl time.Duration, o ClaimOptions) ([]string, error) {
	switch {
	case n < 1 || n > MaxClaims:
		return nil, fmt.Errorf("%w: count %d out of 1..%d", ErrOptions, n, MaxClaims)
	case ttl <= 0:
		return nil, fmt.Errorf("%w: expiry must be positive", ErrOptions)
	case o.Reenrol && o.Agent == "":
		return nil, fmt.Errorf("%w: a re-enrolment token needs the agent it re-enrols", ErrOptions)
	}
	if o.Agent != "" {
		if err := wire.ValidateID("agent", o.Agent); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrOptions, err)
		}
	}
	toks := make([]string, n)
	for i := range toks {
		b := make([]byte, tokenBytes)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("hubca: %w", err)
		}
		toks[i] = TokenPrefix + strings.ToLower(tokenEnc.EncodeToString(b))
	}
	err := c.update(func(s *state, now time.Time) error {
		for _, t := range toks {
			s.Tokens = append(s.Tokens, tokenRecord{Hash: hashToken(t), Created: now, Expires: now.Add(ttl),
				Agent: o.Agent, Reenrol: o.Reenrol})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return toks, nil
}

// Enrol redeems token for the CSR (enrolment.md §3) and returns the box
// certificate, PEM. In order it refuses: a bad CSR or one naming another
// agent than agent (ErrBadCSR), an unknown token or one for another agent
// (ErrTokenUnknown), a used one (ErrTokenUsed) — unless it was used by this
// same request id for this same CSR, which returns the certificate issued
// then, so a box whose answer was lost can ask again —, an expired one
// (ErrTokenExpired), and an agent with a live certificate when the token
// is not a re-enrolment token for it (ErrAgentTaken; the token stays
// unused). The token is marked used, and the certificate recorded, in one
// durable write before the certificate is returned; if that write fails
// nothing is issued.
func (c *CA) Enrol(token, requestID string, csrPEM []byte, agent string) ([]byte, error) {
	csr, err := ParseCSR(csrPEM, agent)
	if err != nil {
		return nil, err
	}
	h := hashToken(token)
	csrSum := sha256.Sum256(csr.Raw)
	csrHash := hex.EncodeToString(csrSum[:])
	var out []byte
	err = c.update(func(s *state, now time.Time) error {
		i := -1
		for j := range s.Tokens {
			if s.Tokens[j].Hash == h {
				i = j
				break
			}
		}
		if i < 0 {
			return fmt.Errorf("%w", ErrTokenUnknown)
		}
		t := &s.Tokens[i]
		if t.Agent != "" && t.Agent != agent {
			return fmt.Errorf("%w: it was made for another agent", ErrTokenUnknown)
		}
		if t.Used != nil {
			if t.Request == requestID && t.CSRHash == csrHash && t.UsedBy == agent {
				for _, is := range s.Issued {
					if is.Serial == t.Serial {
						out = []byte(is.Cert)
						return errNoChange
					}
				}
			}
			return fmt.Errorf("%w (at %s)", ErrTokenUsed, t.Used.UTC().Format(time.RFC3339))
		}
		if !now.Before(t.Expires) {
			return fmt.Errorf("%w (at %s)", ErrTokenExpired, t.Expires.UTC().Format(time.RFC3339))
		}
		if live := s.live(agent, now); live != nil && !t.Reenrol {
			return fmt.Errorf("%w (serial %s, until %s)", ErrAgentTaken, live.Serial, live.NotAfter.UTC().Format(time.RFC3339))
		}
		cert, pemCert, err := c.sign(csr, now)
		if err != nil {
			return err
		}
		used := now
		t.Used, t.UsedBy, t.Request, t.CSRHash, t.Serial = &used, agent, requestID, csrHash, serialHex(cert)
		s.Issued = append(s.Issued, issuedRecord{Agent: agent, Serial: serialHex(cert), Issued: now,
			NotAfter: cert.NotAfter, Via: "claim", Cert: string(pemCert)})
		out = pemCert
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SignOffline signs a CSR brought to the hub ("hubd ca sign") and returns
// the certificate, PEM, and the agent it names. It refuses a bad CSR
// (ErrBadCSR) and, unless reenrol, an agent with a live certificate
// (ErrAgentTaken).
func (c *CA) SignOffline(csrPEM []byte, reenrol bool) ([]byte, string, error) {
	csr, err := ParseCSR(csrPEM, "")
	if err != nil {
		return nil, "", err
	}
	agent := csr.Subject.CommonName
	var out []byte
	err = c.update(func(s *state, now time.Time) error {
		if live := s.live(agent, now); live != nil && !reenrol {
			return fmt.Errorf("%w (serial %s, until %s)", ErrAgentTaken, live.Serial, live.NotAfter.UTC().Format(time.RFC3339))
		}
		cert, pemCert, err := c.sign(csr, now)
		if err != nil {
			return err
		}
		s.Issued = append(s.Issued, issuedRecord{Agent: agent, Serial: serialHex(cert), Issued: now,
			NotAfter: cert.NotAfter, Via: "offline", Cert: string(pemCert)})
		out = pemCert
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, agent, nil
}

// live returns the newest certificate of agent still valid at now.
func (s *state) live(agent string, now time.Time) *issuedRecord {
	for i := len(s.Issued) - 1; i >= 0; i-- {
		if is := &s.Issued[i]; is.Agent == agent && now.Before(is.NotAfter) {
			return is
		}
	}
	return nil
}

// errNoChange ends an update without writing.
var errNoChange = errors.New("hubca: no change")

// update runs f on the current state under the process mutex and the
// directory lock, and writes the state back atomically if f returns nil.
func (c *CA) update(f func(s *state, now time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := lockDir(filepath.Join(c.dir, lockFile))
	if err != nil {
		return err
	}
	defer unlock()
	s, raw, err := c.load()
	if err != nil {
		return err
	}
	if err := f(&s, c.opts.Now()); err != nil {
		if errors.Is(err, errNoChange) {
			return nil
		}
		return err
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return fmt.Errorf("hubca: %w", err)
	}
	if bytes.Equal(b, raw) {
		return nil
	}
	return c.save(b)
}

func (c *CA) load() (state, []byte, error) {
	var s state
	b, err := os.ReadFile(filepath.Join(c.dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil, nil
	}
	if err != nil {
		return s, nil, fmt.Errorf("hubca: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, nil, fmt.Errorf("hubca: %s: %w", filepath.Join(c.dir, StateFile), err)
	}
	return s, b, nil
}

func (c *CA) save(b []byte) error {
	if err := atomicfile.Replace(filepath.Join(c.dir, StateFile), b, 0o600); err != nil {
		return fmt.Errorf("hubca: saving %s: %w", StateFile, err)
	}
	return nil
}

// Claim describes one stored claim token (never the token itself).
type Claim struct {
	Created, Expires time.Time
	Agent            string
	Reenrol          bool
	Used             *time.Time
	UsedBy           string
}

// Claims lists the stored claim tokens, oldest first.
func (c *CA) Claims() ([]Claim, error) {
	var out []Claim
	err := c.update(func(s *state, _ time.Time) error {
		for _, t := range s.Tokens {
			out = append(out, Claim{Created: t.Created, Expires: t.Expires, Agent: t.Agent, Reenrol: t.Reenrol,
				Used: t.Used, UsedBy: t.UsedBy})
		}
		return errNoChange
	})
	return out, err
}

// Issued returns the certificates issued to agent, oldest first.
func (c *CA) Issued(agent string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	err := c.update(func(s *state, _ time.Time) error {
		for _, is := range s.Issued {
			if is.Agent != agent {
				continue
			}
			cert, err := parseCertPEM([]byte(is.Cert))
			if err != nil {
				return err
			}
			out = append(out, cert)
		}
		return errNoChange
	})
	return out, err
}
