package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Box enrolment messages and topics (firmware-specs/enrolment.md §4).

// EnrolSegment is the topic segment under <root>/v1/ that carries
// enrolment. ValidateID refuses a leading '$', so no agent id can be it.
const EnrolSegment = "$enrol"

// EnrolVersion is the V of every enrolment message.
const EnrolVersion = 1

// Limits of enrolment messages (enrolment.md §4).
const (
	MaxEnrolMessage = 16 << 10 // bytes of a request or response
	MaxEnrolCSR     = 8 << 10  // bytes of the CSR's PEM
	MaxEnrolToken   = 128
)

// Error codes of an EnrolResponse (enrolment.md §5).
const (
	EnrolTokenUnknown = "token_unknown"
	EnrolTokenUsed    = "token_used"
	EnrolTokenExpired = "token_expired"
	EnrolBadCSR       = "bad_csr"
	EnrolAgentTaken   = "agent_taken"
	EnrolBadRequest   = "bad_request"
	EnrolInternal     = "internal"
)

// ErrBadEnrol is returned (wrapped) by the enrolment decoders and
// ParseEnrolTopic.
var ErrBadEnrol = errors.New("wire: bad enrolment message")

// EnrolRequest is what a box without a certificate publishes on
// EnrolRequestTopic: a one-time claim token and a certificate request
// signed by the box's own key.
type EnrolRequest struct {
	V     int    `json:"v"`
	ID    string `json:"id"`    // request id, also in the topic
	Agent string `json:"agent"` // the agent id the CSR names
	Token string `json:"token"` // the claim token (secret: never log it)
	CSR   string `json:"csr"`   // PEM "CERTIFICATE REQUEST"
}

// EnrolResponse is the hub's answer on EnrolResponseTopic. OK carries the
// box certificate and the CA that signed it (both PEM); otherwise Code is
// one of the Enrol* codes and Message says what to do.
type EnrolResponse struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	OK      bool   `json:"ok"`
	Cert    string `json:"cert,omitempty"`
	CA      string `json:"ca,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// ValidEnrolID reports whether id can be a request id: 16 to 64 bytes of
// [A-Za-z0-9_-].
func ValidEnrolID(id string) bool { return tokenOK(id, 16, 64, false) }

// EnrolRequestTopic is <root>/v1/$enrol/<id>/req.
func EnrolRequestTopic(root, id string) string {
	return root + "/" + Version + "/" + EnrolSegment + "/" + id + "/req"
}

// EnrolResponseTopic is <root>/v1/$enrol/<id>/resp.
func EnrolResponseTopic(root, id string) string {
	return root + "/" + Version + "/" + EnrolSegment + "/" + id + "/resp"
}

// EnrolRequestFilter matches every request under root:
// <root>/v1/$enrol/+/req.
func EnrolRequestFilter(root string) string { return EnrolRequestTopic(root, "+") }

// ParseEnrolRequestTopic returns the request id of a request topic under
// root, or an error wrapping ErrBadEnrol for anything else.
func ParseEnrolRequestTopic(root, topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, root+"/"+Version+"/"+EnrolSegment+"/")
	if !ok {
		return "", fmt.Errorf("%w: topic not under %s/%s/%s", ErrBadEnrol, root, Version, EnrolSegment)
	}
	id, ok := strings.CutSuffix(rest, "/req")
	if !ok || !ValidEnrolID(id) {
		return "", fmt.Errorf("%w: not a request topic", ErrBadEnrol)
	}
	return id, nil
}

// EncodeEnrolRequest sets V and returns r as JSON.
func EncodeEnrolRequest(r EnrolRequest) ([]byte, error) {
	r.V = EnrolVersion
	if err := r.check(); err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// DecodeEnrolRequest parses and checks a request: strict JSON (no unknown
// fields), V 1, a valid request id and agent id, a token of 1 to
// MaxEnrolToken bytes of [A-Za-z0-9_-], a CSR of at most MaxEnrolCSR
// bytes that looks like PEM. It does not parse the CSR itself. Errors wrap
// ErrBadEnrol.
func DecodeEnrolRequest(b []byte) (EnrolRequest, error) {
	var r EnrolRequest
	if len(b) > MaxEnrolMessage {
		return r, fmt.Errorf("%w: %d bytes, more than %d", ErrBadEnrol, len(b), MaxEnrolMessage)
	}
	if err := strictJSON(b, &r, ErrBadEnrol); err != nil {
		return EnrolRequest{}, err
	}
	if err := r.check(); err != nil {
		return EnrolRequest{}, err
	}
	return r, nil
}

func (r EnrolRequest) check() error {
	switch {
	case r.V != EnrolVersion:
		return fmt.Errorf("%w: version %d", ErrBadEnrol, r.V)
	case !ValidEnrolID(r.ID):
		return fmt.Errorf("%w: request id", ErrBadEnrol)
	case ValidateID("agent", r.Agent) != nil:
		return fmt.Errorf("%w: agent id", ErrBadEnrol)
	case !tokenOK(r.Token, 1, MaxEnrolToken, false):
		return fmt.Errorf("%w: token format", ErrBadEnrol) // never echo the token
	case len(r.CSR) > MaxEnrolCSR || !strings.HasPrefix(strings.TrimSpace(r.CSR), "-----BEGIN CERTIFICATE REQUEST-----"):
		return fmt.Errorf("%w: csr is not a PEM certificate request of at most %d bytes", ErrBadEnrol, MaxEnrolCSR)
	}
	return nil
}

// EncodeEnrolResponse sets V and returns r as JSON.
func EncodeEnrolResponse(r EnrolResponse) ([]byte, error) {
	r.V = EnrolVersion
	if err := r.check(); err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// DecodeEnrolResponse parses and checks a response: strict JSON, V 1, a
// valid id, and either OK with a cert and a CA and no code, or not OK with
// a code and no cert. Errors wrap ErrBadEnrol.
func DecodeEnrolResponse(b []byte) (EnrolResponse, error) {
	var r EnrolResponse
	if len(b) > MaxEnrolMessage {
		return r, fmt.Errorf("%w: %d bytes, more than %d", ErrBadEnrol, len(b), MaxEnrolMessage)
	}
	if err := strictJSON(b, &r, ErrBadEnrol); err != nil {
		return EnrolResponse{}, err
	}
	if err := r.check(); err != nil {
		return EnrolResponse{}, err
	}
	return r, nil
}

func (r EnrolResponse) check() error {
	switch {
	case r.V != EnrolVersion:
		return fmt.Errorf("%w: version %d", ErrBadEnrol, r.V)
	case !ValidEnrolID(r.ID):
		return fmt.Errorf("%w: request id", ErrBadEnrol)
	case r.OK && (r.Cert == "" || r.CA == "" || r.Code != ""):
		return fmt.Errorf("%w: ok response needs cert and ca and no code", ErrBadEnrol)
	case !r.OK && (r.Code == "" || r.Cert != "" || !tokenOK(r.Code, 1, 32, false)):
		return fmt.Errorf("%w: refusal needs a code and no cert", ErrBadEnrol)
	}
	return nil
}
