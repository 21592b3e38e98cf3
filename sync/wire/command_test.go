package wire_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/firmware-specs/commandvectors"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func loadCommandVectors(t testing.TB) commandvectors.Vectors {
	t.Helper()
	v, err := commandvectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCommandShapes pins the JSON field names (hub-commands.md §2, §5).
func TestCommandShapes(t *testing.T) {
	c := wire.Command{ID: "c-1", Agent: "gate-01", Name: wire.CmdDoorOpen, Args: json.RawMessage(`{"door":"d1"}`),
		Issued:  time.Date(2024, 5, 1, 8, 30, 0, 0, time.UTC),
		Expires: time.Date(2024, 5, 1, 8, 31, 0, 0, time.UTC), Nonce: "n-0123456789abcdef", Sig: "c2ln"}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":"c-1","agent":"gate-01","name":"door.open","args":{"door":"d1"},"issued":"2024-05-01T08:30:00Z","expires":"2024-05-01T08:31:00Z","nonce":"n-0123456789abcdef","sig":"c2ln"}`
	if string(b) != want {
		t.Errorf("command JSON\n got %s\nwant %s", b, want)
	}
	r, err := json.Marshal(wire.CommandResult{ID: "c-1", Agent: "gate-01", Name: "door.open", Code: "expired", Message: "expired at 08:31:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	if string(r) != `{"id":"c-1","agent":"gate-01","name":"door.open","ok":false,"code":"expired","message":"expired at 08:31:00Z"}` {
		t.Errorf("result JSON %s", r)
	}
}

// TestCommandVectors checks the codec against the spec's corpus: malformed
// cases fail ParseCommand, every other case parses to the canonical bytes
// of the vector, and the signature verifies exactly when the case is not
// "unsigned".
func TestCommandVectors(t *testing.T) {
	v := loadCommandVectors(t)
	pub := ed25519.PublicKey(v.PublicKey)
	for _, tc := range v.Sequence {
		c, err := wire.ParseCommand(tc.Bytes())
		if tc.Code == wire.CodeMalformed {
			if !errors.Is(err, wire.ErrBadCommand) {
				t.Errorf("%s: ParseCommand err %v, want ErrBadCommand", tc.Name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: ParseCommand: %v", tc.Name, err)
			continue
		}
		if !bytes.Equal(c.SigningBytes(), tc.Canonical) {
			t.Errorf("%s: signing bytes\n got %x\nwant %x", tc.Name, c.SigningBytes(), []byte(tc.Canonical))
		}
		err = wire.VerifyCommand(pub, &c)
		if (err != nil) != (tc.Code == wire.CodeUnsigned) {
			t.Errorf("%s: VerifyCommand: %v, case code %s", tc.Name, err, tc.Code)
		}
	}
}

// Signing in Go gives the signature the vectors hold (Ed25519 is
// deterministic), and the other key's signature never verifies.
func TestSignCommand(t *testing.T) {
	v := loadCommandVectors(t)
	priv, other := ed25519.NewKeyFromSeed(v.Seed), ed25519.NewKeyFromSeed(v.OtherSeed)
	pub := priv.Public().(ed25519.PublicKey)
	first := v.Sequence[0]
	c, err := wire.ParseCommand(first.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := c.Sig
	wire.SignCommand(priv, &c)
	if c.Sig != want {
		t.Errorf("Go signature %s, vector %s", c.Sig, want)
	}
	if err := wire.VerifyCommand(pub, &c); err != nil {
		t.Errorf("verify own signature: %v", err)
	}
	wire.SignCommand(other, &c)
	if err := wire.VerifyCommand(pub, &c); !errors.Is(err, wire.ErrBadSignature) {
		t.Errorf("other key: %v, want ErrBadSignature", err)
	}
	c.Sig = ""
	if err := wire.VerifyCommand(pub, &c); !errors.Is(err, wire.ErrUnsigned) {
		t.Errorf("no sig: %v, want ErrUnsigned", err)
	}
	wire.SignCommand(priv, &c)
	if err := wire.VerifyCommand(pub[:31], &c); !errors.Is(err, wire.ErrBadSignature) {
		t.Errorf("short key: %v, want ErrBadSignature", err)
	}
}

// Two commands whose fields differ only in where a byte sits between
// adjacent fields have different signing bytes (the length prefixes).
func TestSigningBytesUnambiguous(t *testing.T) {
	base := wire.Command{ID: "ab", Agent: "c", Name: "door.open", Nonce: "n-0123456789abcdef",
		Issued: time.Unix(0, 0), Expires: time.Unix(60, 0)}
	moved := base
	moved.ID, moved.Agent = "a", "bc"
	if bytes.Equal(base.SigningBytes(), moved.SigningBytes()) {
		t.Error("id/agent boundary not encoded")
	}
	// The same instant in another zone signs the same.
	zoned := base
	zoned.Expires = base.Expires.In(time.FixedZone("", 7200))
	if !bytes.Equal(base.SigningBytes(), zoned.SigningBytes()) {
		t.Error("zone changes the signing bytes")
	}
}

func TestParseCommandSizeBound(t *testing.T) {
	v := loadCommandVectors(t)
	ok := v.Sequence[0].Bytes()
	huge := append(bytes.Repeat([]byte(" "), wire.MaxControlMessage), ok...)
	if _, err := wire.ParseCommand(huge); !errors.Is(err, wire.ErrBadCommand) {
		t.Errorf("huge payload: %v", err)
	}
	if got := wire.CommandID(huge); got != "" {
		t.Errorf("CommandID of a huge payload %q", got)
	}
	if got := wire.CommandID(ok); got != "c-1" {
		t.Errorf("CommandID %q", got)
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		open bool // valid door.open args
		mode bool // valid door.mode args
	}{
		{`{"door":"d1"}`, true, false},
		{`{"door":"d1","mode":"normal"}`, false, true},
		{`{"door":"d1","mode":"free_passage"}`, false, true},
		{`{"door":"d1","mode":"locked_down"}`, false, true},
		{`{"door":"d1","mode":"Normal"}`, false, false},
		{`{"door":""}`, false, false},
		{`{"door":"a b"}`, false, false},
		{`{"door":"` + strings.Repeat("d", wire.MaxDoorLen+1) + `"}`, false, false},
		{`{"door":"d1"} {}`, false, false},
		{`[]`, false, false},
		{``, false, false},
		{`{"door":1}`, false, false},
	} {
		_, err := wire.ParseDoorOpenArgs(json.RawMessage(tc.raw))
		if (err == nil) != tc.open {
			t.Errorf("door.open %s: %v", tc.raw, err)
		}
		_, err = wire.ParseDoorModeArgs(json.RawMessage(tc.raw))
		if (err == nil) != tc.mode {
			t.Errorf("door.mode %s: %v", tc.raw, err)
		}
	}
}

func TestDecodeCommandResult(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"id":"c-1","ok":true,"code":"ok"}`, true},
		{`{"id":"c-1","ok":false,"code":"replayed","message":"nonce seen"}`, true},
		{`{"id":"c-1","ok":true,"code":"replayed"}`, false},
		{`{"id":"c-1","ok":false,"code":"ok"}`, false},
		{`{"id":"c-1","ok":false,"code":"nope"}`, false},
		{`{"id":`, false},
	} {
		_, err := wire.DecodeCommandResult([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.in, err)
		}
	}
}

func TestCommandKeyPEM(t *testing.T) {
	v := loadCommandVectors(t)
	priv := ed25519.NewKeyFromSeed(v.Seed)
	pub := priv.Public().(ed25519.PublicKey)
	gotPriv, err := wire.ParseCommandPrivateKey(wire.MarshalCommandPrivateKey(priv))
	if err != nil || !gotPriv.Equal(priv) {
		t.Errorf("private key round trip: %v", err)
	}
	gotPub, err := wire.ParseCommandPublicKey(wire.MarshalCommandPublicKey(pub))
	if err != nil || !gotPub.Equal(pub) {
		t.Errorf("public key round trip: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":             nil,
		"private as public": wire.MarshalCommandPrivateKey(priv),
		"two blocks":        append(wire.MarshalCommandPublicKey(pub), wire.MarshalCommandPublicKey(pub)...),
		"short":             []byte("-----BEGIN KIOSKEDGE COMMAND PUBLIC KEY-----\nAAAA\n-----END KIOSKEDGE COMMAND PUBLIC KEY-----\n"),
	} {
		if _, err := wire.ParseCommandPublicKey(b); !errors.Is(err, wire.ErrCommandKey) {
			t.Errorf("%s: %v, want ErrCommandKey", name, err)
		}
	}
	if _, err := wire.ParseCommandPrivateKey(wire.MarshalCommandPublicKey(pub)); !errors.Is(err, wire.ErrCommandKey) {
		t.Errorf("public as private: %v", err)
	}
}

// FuzzParseCommand: no input panics; whatever parses has fields within
// their bounds, and never verifies under the hub key unless it is one of
// the corpus's own validly signed payloads (a fuzzer cannot forge one).
func FuzzParseCommand(f *testing.F) {
	v := loadCommandVectors(f)
	pub := ed25519.PublicKey(v.PublicKey)
	signed := map[string]bool{}
	for _, tc := range v.Sequence {
		f.Add(tc.Bytes())
		if tc.Code != wire.CodeUnsigned && tc.Code != wire.CodeMalformed {
			c, err := wire.ParseCommand(tc.Bytes())
			if err != nil {
				f.Fatal(err)
			}
			signed[string(c.SigningBytes())] = true
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := wire.ParseCommand(b)
		if err != nil {
			if !errors.Is(err, wire.ErrBadCommand) {
				t.Fatalf("error %v does not wrap ErrBadCommand", err)
			}
			return
		}
		if c.ID == "" || c.Nonce == "" || c.Agent == "" || c.Expires.Before(c.Issued) {
			t.Fatalf("parsed out of bounds: %+v", c)
		}
		if wire.VerifyCommand(pub, &c) == nil && !signed[string(c.SigningBytes())] {
			t.Fatalf("a new payload verifies: %q", b)
		}
	})
}
