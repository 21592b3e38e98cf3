package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"
)

// Signed remote commands (hub-commands.md). The hub signs a Command with its
// command key (Ed25519); the agent verifies it against the public key it was
// provisioned with and answers with a CommandResult.

// CommandDomain is the first field of the canonical signing form, so a
// command signature can never be mistaken for a signature over anything else.
const CommandDomain = "kioskedge-cmd-v1"

// Command names (hub-commands.md §3).
const (
	CmdDoorOpen = "door.open" // DoorOpenArgs: one unlock pulse
	CmdDoorMode = "door.mode" // DoorModeArgs: set a door's mode
	// CmdRebirth asks the agent to publish its birth and health again and
	// resend what the hub has not acked; no args (absent or {}).
	CmdRebirth = "agent.rebirth"
)

// Door modes carried by door.mode.
const (
	DoorModeNormal      = "normal"
	DoorModeLockedDown  = "locked_down"
	DoorModeFreePassage = "free_passage"
)

// Result codes of a CommandResult (hub-commands.md §5).
const (
	CodeOK             = "ok"
	CodeMalformed      = "malformed"       // not a well-formed command
	CodeUnsigned       = "unsigned"        // missing or bad signature
	CodeWrongAgent     = "wrong_agent"     // signed for another agent
	CodeExpired        = "expired"         // expiry (plus allowed skew) passed
	CodeTooFar         = "too_far"         // expiry beyond the agent's horizon
	CodeUnknownCommand = "unknown_command" // a name this agent does not run
	CodeBadArgs        = "bad_args"        // args do not fit the name
	CodeReplayed       = "replayed"        // nonce seen before
	CodeSeenLost       = "seen_lost"       // issued before the replay record was lost
	CodeFailed         = "failed"          // the handler (or the replay record) failed
)

// ResultCodes lists every result code, CodeOK first.
var ResultCodes = []string{CodeOK, CodeMalformed, CodeUnsigned, CodeWrongAgent, CodeExpired,
	CodeTooFar, CodeUnknownCommand, CodeBadArgs, CodeReplayed, CodeSeenLost, CodeFailed}

// KindCommandResult is the outbox record kind of a command result (class
// critical); its body is the CommandResult JSON.
const KindCommandResult = "command.result"

// Command field bounds.
const (
	MaxCommandIDLen   = 64
	MinNonceLen       = 16
	MaxNonceLen       = 64
	MaxCommandNameLen = 64
	MaxDoorLen        = 64
)

// Errors of the command codec.
var (
	// ErrBadCommand wraps every ParseCommand and args decoding failure.
	ErrBadCommand = errors.New("wire: malformed command")
	// ErrUnsigned: the command carries no signature.
	ErrUnsigned = errors.New("wire: command not signed")
	// ErrBadSignature: the signature is not valid base64 of 64 bytes or does
	// not verify under the key.
	ErrBadSignature = errors.New("wire: command signature does not verify")
	// ErrCommandKey wraps key file decoding failures.
	ErrCommandKey = errors.New("wire: bad command key")
)

// Command is a signed command from the hub (hub-commands.md §2).
type Command struct {
	ID      string          `json:"id"`
	Agent   string          `json:"agent"` // the target agent id
	Name    string          `json:"name"`
	Args    json.RawMessage `json:"args,omitempty"` // a JSON object, signed byte for byte
	Issued  time.Time       `json:"issued"`
	Expires time.Time       `json:"expires"`
	Nonce   string          `json:"nonce"`
	Sig     string          `json:"sig,omitempty"` // base64 (standard, padded) Ed25519 over SigningBytes
}

// CommandResult answers a Command, on cmd/result and as a command.result
// record. Message never holds personal data.
type CommandResult struct {
	ID      string    `json:"id"` // the command's id; empty when it could not be read
	Agent   string    `json:"agent,omitempty"`
	Name    string    `json:"name,omitempty"`
	OK      bool      `json:"ok"`
	Code    string    `json:"code,omitempty"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time,omitzero"`
}

// DoorOpenArgs are the args of door.open.
type DoorOpenArgs struct {
	Door string `json:"door"`
}

// DoorModeArgs are the args of door.mode.
type DoorModeArgs struct {
	Door string `json:"door"`
	Mode string `json:"mode"`
}

// commandTime is the canonical text of a command timestamp.
func commandTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// SigningBytes returns the canonical form the signature covers
// (hub-commands.md §4): CommandDomain, id, agent, name, args, issued,
// expires and nonce, each as a 4-byte big-endian length then the bytes.
// Args are the raw bytes as received (empty when absent); timestamps are
// RFC 3339 with nanoseconds, in UTC, trailing zeros dropped.
func (c *Command) SigningBytes() []byte {
	fields := [][]byte{[]byte(CommandDomain), []byte(c.ID), []byte(c.Agent), []byte(c.Name),
		c.Args, []byte(commandTime(c.Issued)), []byte(commandTime(c.Expires)), []byte(c.Nonce)}
	n := 0
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// SignCommand sets c.Sig to the signature of c.SigningBytes() under priv.
func SignCommand(priv ed25519.PrivateKey, c *Command) {
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, c.SigningBytes()))
}

// VerifyCommand checks c.Sig against pub. It returns ErrUnsigned for an
// empty Sig, ErrBadSignature for a Sig that is not standard base64 of 64
// bytes or does not verify (or for a pub that is not 32 bytes), else nil.
func VerifyCommand(pub ed25519.PublicKey, c *Command) error {
	if c.Sig == "" {
		return ErrUnsigned
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(c.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize {
		return ErrBadSignature
	}
	if !ed25519.Verify(pub, c.SigningBytes(), sig) {
		return ErrBadSignature
	}
	return nil
}

// ParseCommand decodes a command strictly: at most MaxControlMessage bytes,
// one JSON object, no unknown fields, no trailing data; id, agent, name,
// issued, expires and nonce present and within their syntax
// (hub-commands.md §2); args, when present, a JSON object; issued not after
// expires. Sig may be empty (VerifyCommand reports it). Every failure wraps
// ErrBadCommand. It does not check the signature.
func ParseCommand(b []byte) (Command, error) {
	var c Command
	if len(b) > MaxControlMessage {
		return c, fmt.Errorf("%w: %d bytes over %d", ErrBadCommand, len(b), MaxControlMessage)
	}
	if err := strictJSON(b, &c, ErrBadCommand); err != nil {
		return Command{}, err
	}
	switch {
	case !tokenOK(c.ID, 1, MaxCommandIDLen, true):
		return c, fmt.Errorf("%w: id must be 1..%d of [A-Za-z0-9._-]", ErrBadCommand, MaxCommandIDLen)
	case ValidateID("agent", c.Agent) != nil:
		return c, fmt.Errorf("%w: %v", ErrBadCommand, ValidateID("agent", c.Agent))
	case !nameOK(c.Name):
		return c, fmt.Errorf("%w: name must be 1..%d of [a-z0-9._]", ErrBadCommand, MaxCommandNameLen)
	case !tokenOK(c.Nonce, MinNonceLen, MaxNonceLen, false):
		return c, fmt.Errorf("%w: nonce must be %d..%d of [A-Za-z0-9_-]", ErrBadCommand, MinNonceLen, MaxNonceLen)
	case c.Issued.IsZero() || c.Expires.IsZero():
		return c, fmt.Errorf("%w: issued and expires are required", ErrBadCommand)
	case c.Issued.After(c.Expires):
		return c, fmt.Errorf("%w: issued after expires", ErrBadCommand)
	case c.Args != nil && (len(c.Args) == 0 || c.Args[0] != '{'):
		return c, fmt.Errorf("%w: args must be a JSON object", ErrBadCommand)
	case len(c.Sig) > 128:
		return c, fmt.Errorf("%w: sig too long", ErrBadCommand)
	}
	return c, nil
}

// CommandID returns the id of a command that ParseCommand refused, when b is
// a JSON object with a syntactically valid string "id", else "". It lets a
// malformed result name the command it answers; nothing is trusted from it.
func CommandID(b []byte) string {
	if len(b) > MaxControlMessage {
		return ""
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(b, &v) != nil || !tokenOK(v.ID, 1, MaxCommandIDLen, true) {
		return ""
	}
	return v.ID
}

// ParseDoorOpenArgs decodes door.open args strictly: {"door": D} with D
// 1..MaxDoorLen printable ASCII, nothing else. Errors wrap ErrBadCommand.
func ParseDoorOpenArgs(raw json.RawMessage) (DoorOpenArgs, error) {
	var a DoorOpenArgs
	if err := strictJSON(raw, &a, ErrBadCommand); err != nil {
		return a, err
	}
	if !doorOK(a.Door) {
		return a, fmt.Errorf("%w: door must be 1..%d printable ASCII", ErrBadCommand, MaxDoorLen)
	}
	return a, nil
}

// ParseDoorModeArgs decodes door.mode args strictly: {"door": D, "mode": M}
// with M one of the DoorMode constants. Errors wrap ErrBadCommand.
func ParseDoorModeArgs(raw json.RawMessage) (DoorModeArgs, error) {
	var a DoorModeArgs
	if err := strictJSON(raw, &a, ErrBadCommand); err != nil {
		return a, err
	}
	if !doorOK(a.Door) {
		return a, fmt.Errorf("%w: door must be 1..%d printable ASCII", ErrBadCommand, MaxDoorLen)
	}
	switch a.Mode {
	case DoorModeNormal, DoorModeLockedDown, DoorModeFreePassage:
	default:
		return a, fmt.Errorf("%w: mode must be normal, locked_down or free_passage", ErrBadCommand)
	}
	return a, nil
}

// ParseNoArgs checks the args of a command that takes none (agent.rebirth):
// absent, or the empty object {}. Errors wrap ErrBadCommand.
func ParseNoArgs(raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	var v struct{}
	return strictJSON(raw, &v, ErrBadCommand)
}

// DecodeCommandResult parses a result, rejecting oversized or malformed
// input and an unknown code. Errors wrap ErrBadMessage.
func DecodeCommandResult(b []byte) (CommandResult, error) {
	var r CommandResult
	if err := decodeJSON(b, &r); err != nil {
		return r, err
	}
	known := false
	for _, c := range ResultCodes {
		known = known || c == r.Code
	}
	if !known || r.OK != (r.Code == CodeOK) {
		return r, fmt.Errorf("%w: result code %q with ok=%v", ErrBadMessage, r.Code, r.OK)
	}
	return r, nil
}

// strictJSON decodes the JSON object b into v, refusing unknown fields
// and anything after the object; errors wrap bad.
func strictJSON(b []byte, v any, bad error) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", bad)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", bad, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data", bad)
	}
	return nil
}

// tokenOK: length within [lo, hi], bytes in [A-Za-z0-9_-] and, with dot,
// '.' too.
func tokenOK(s string, lo, hi int, dot bool) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || dot && c == '.'
		if !ok {
			return false
		}
	}
	return true
}

func nameOK(s string) bool {
	if len(s) == 0 || len(s) > MaxCommandNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func doorOK(s string) bool {
	if len(s) == 0 || len(s) > MaxDoorLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// PEM block types of the command key files (hub-commands.md §7).
const (
	CommandPrivateKeyPEMType = "KIOSKEDGE COMMAND PRIVATE KEY" // the 32-byte Ed25519 seed
	CommandPublicKeyPEMType  = "KIOSKEDGE COMMAND PUBLIC KEY"  // the 32-byte Ed25519 public key
)

// MarshalCommandPrivateKey returns priv's seed as a PEM block (the cmd.key
// file's content). It is the secret itself: never log it.
func MarshalCommandPrivateKey(priv ed25519.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: CommandPrivateKeyPEMType, Bytes: priv.Seed()})
}

// MarshalCommandPublicKey returns pub as a PEM block (the cmd.pub file's
// content).
func MarshalCommandPublicKey(pub ed25519.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: CommandPublicKeyPEMType, Bytes: pub})
}

// ParseCommandPrivateKey decodes a cmd.key file's content: exactly one PEM
// block of type CommandPrivateKeyPEMType, no headers, 32 bytes. Errors wrap
// ErrCommandKey.
func ParseCommandPrivateKey(b []byte) (ed25519.PrivateKey, error) {
	raw, err := onePEM(b, CommandPrivateKeyPEMType, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(raw), nil
}

// ParseCommandPublicKey decodes a cmd.pub file's content: exactly one PEM
// block of type CommandPublicKeyPEMType, no headers, 32 bytes. Errors wrap
// ErrCommandKey.
func ParseCommandPublicKey(b []byte) (ed25519.PublicKey, error) {
	raw, err := onePEM(b, CommandPublicKeyPEMType, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(raw), nil
}

func onePEM(b []byte, typ string, size int) ([]byte, error) {
	block, rest := pem.Decode(b)
	switch {
	case block == nil:
		return nil, fmt.Errorf("%w: no PEM block", ErrCommandKey)
	case block.Type != typ:
		return nil, fmt.Errorf("%w: PEM type %q, want %q", ErrCommandKey, block.Type, typ)
	case len(block.Headers) != 0:
		return nil, fmt.Errorf("%w: unexpected PEM headers", ErrCommandKey)
	case len(block.Bytes) != size:
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrCommandKey, len(block.Bytes), size)
	}
	if more, _ := pem.Decode(rest); more != nil {
		return nil, fmt.Errorf("%w: more than one PEM block", ErrCommandKey)
	}
	return block.Bytes, nil
}
