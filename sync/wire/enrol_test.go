package wire_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/sync/wire"
)

const testCSR = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"

func TestEnrolTopics(t *testing.T) {
	const root, id = "kioskedge/prov-a", "0123456789abcdef0123"
	req := wire.EnrolRequestTopic(root, id)
	if req != "kioskedge/prov-a/v1/$enrol/0123456789abcdef0123/req" {
		t.Fatalf("request topic %q", req)
	}
	if got := wire.EnrolResponseTopic(root, id); got != "kioskedge/prov-a/v1/$enrol/0123456789abcdef0123/resp" {
		t.Errorf("response topic %q", got)
	}
	if got := wire.EnrolRequestFilter(root); got != "kioskedge/prov-a/v1/$enrol/+/req" {
		t.Errorf("filter %q", got)
	}
	if got, err := wire.ParseEnrolRequestTopic(root, req); err != nil || got != id {
		t.Errorf("parse %q: %q, %v", req, got, err)
	}
	for _, bad := range []string{
		wire.EnrolResponseTopic(root, id),
		wire.EnrolRequestTopic("other", id),
		wire.EnrolRequestTopic(root, "short"),
		wire.EnrolRequestTopic(root, id+"/x"),
		root + "/v1/agent-1/events",
	} {
		if _, err := wire.ParseEnrolRequestTopic(root, bad); !errors.Is(err, wire.ErrBadEnrol) {
			t.Errorf("parse %q: %v, want ErrBadEnrol", bad, err)
		}
	}
	// No agent id can be the enrolment segment.
	if wire.ValidateID("agent", wire.EnrolSegment) == nil {
		t.Error("$enrol passes ValidateID")
	}
	if _, _, err := wire.ParseTopic(root, req); err == nil {
		t.Error("an enrolment topic parses as an agent topic")
	}
}

func TestEnrolRequestRoundTrip(t *testing.T) {
	r := wire.EnrolRequest{ID: "0123456789abcdef", Agent: "box-1", Token: "kec_abc", CSR: testCSR}
	b, err := wire.EncodeEnrolRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.DecodeEnrolRequest(b)
	r.V = wire.EnrolVersion
	if err != nil || got != r {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

func TestDecodeEnrolRequestRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         ``,
		"array":         `[]`,
		"version":       `{"v":2,"id":"0123456789abcdef","agent":"a","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		"unknown field": `{"v":1,"id":"0123456789abcdef","agent":"a","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----","x":1}`,
		"bad id":        `{"v":1,"id":"short","agent":"a","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		"bad agent":     `{"v":1,"id":"0123456789abcdef","agent":"$enrol","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		"bad token":     `{"v":1,"id":"0123456789abcdef","agent":"a","token":"t t","csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		"no token":      `{"v":1,"id":"0123456789abcdef","agent":"a","token":"","csr":"-----BEGIN CERTIFICATE REQUEST-----"}`,
		"not pem":       `{"v":1,"id":"0123456789abcdef","agent":"a","token":"t","csr":"hello"}`,
		"trailing":      `{"v":1,"id":"0123456789abcdef","agent":"a","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----"} {}`,
		"trailing junk": `{"v":1,"id":"0123456789abcdef","agent":"a","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----"} x`,
		"too big":       `{"v":1,"id":"0123456789abcdef","agent":"a","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----` + strings.Repeat("A", wire.MaxEnrolCSR) + `"}`,
	} {
		if _, err := wire.DecodeEnrolRequest([]byte(in)); !errors.Is(err, wire.ErrBadEnrol) {
			t.Errorf("%s: %v, want ErrBadEnrol", name, err)
		}
	}
	// The token never appears in an error.
	_, err := wire.DecodeEnrolRequest([]byte(`{"v":1,"id":"0123456789abcdef","agent":"a","token":"secret token","csr":"x"}`))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v", err)
	}
}

func TestEnrolResponse(t *testing.T) {
	ok := wire.EnrolResponse{ID: "0123456789abcdef", OK: true, Cert: "c", CA: "a"}
	no := wire.EnrolResponse{ID: "0123456789abcdef", Code: wire.EnrolTokenUsed, Message: "used"}
	for _, r := range []wire.EnrolResponse{ok, no} {
		b, err := wire.EncodeEnrolResponse(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wire.DecodeEnrolResponse(b)
		r.V = 1
		if err != nil || got != r {
			t.Errorf("round trip %+v: %+v, %v", r, got, err)
		}
	}
	for _, bad := range []wire.EnrolResponse{
		{ID: "0123456789abcdef", OK: true, Cert: "c"},
		{ID: "0123456789abcdef", OK: true, Cert: "c", CA: "a", Code: "x"},
		{ID: "0123456789abcdef"},
		{ID: "0123456789abcdef", Code: "x", Cert: "c"},
		{ID: "x", OK: true, Cert: "c", CA: "a"},
	} {
		if _, err := wire.EncodeEnrolResponse(bad); !errors.Is(err, wire.ErrBadEnrol) {
			t.Errorf("encode %+v: %v", bad, err)
		}
	}
}

// FuzzDecodeEnrol: no input panics, and what decodes re-encodes to the
// same message.
func FuzzDecodeEnrol(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"0123456789abcdef","agent":"a","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----"}`))
	f.Add([]byte(`{"v":1,"id":"0123456789abcdef","ok":true,"cert":"c","ca":"a"}`))
	f.Add([]byte(`{"v":1,"id":"0123456789abcdef","ok":false,"code":"token_used","message":"m"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := wire.DecodeEnrolRequest(b); err == nil {
			enc, err := wire.EncodeEnrolRequest(r)
			if err != nil {
				t.Fatalf("decoded request does not encode: %v", err)
			}
			if r2, err := wire.DecodeEnrolRequest(enc); err != nil || r2 != r {
				t.Fatalf("request round trip: %+v, %v", r2, err)
			}
		}
		if r, err := wire.DecodeEnrolResponse(b); err == nil {
			enc, err := wire.EncodeEnrolResponse(r)
			if err != nil {
				t.Fatalf("decoded response does not encode: %v", err)
			}
			if r2, err := wire.DecodeEnrolResponse(enc); err != nil || r2 != r {
				t.Fatalf("response round trip: %+v, %v", r2, err)
			}
		}
	})
}
