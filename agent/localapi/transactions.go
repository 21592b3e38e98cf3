package localapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// KindTransaction is the record kind of a kiosk transaction.
const KindTransaction = "kiosk.transaction"

// Outcomes a transaction may report.
var outcomes = map[string]bool{"completed": true, "failed": true, "cancelled": true, "abandoned": true}

// credentialKinds a transaction's credential may have.
var credentialKinds = map[string]credential.Kind{
	"idcard": credential.IDCard, "sscard": credential.SSCard, "qr": credential.QR,
	"osdp": credential.OSDP, "wiegand": credential.Wiegand, "keypad": credential.Keypad,
}

// TransactionRequest is POST /v1/transactions' body.
type TransactionRequest struct {
	Type        string           `json:"type"`
	ServiceCode string           `json:"service_code"`
	Outcome     string           `json:"outcome"`
	StartedAt   string           `json:"started_at"`
	EndedAt     string           `json:"ended_at"`
	Credential  *CredentialInput `json:"credential,omitempty"`
	Details     json.RawMessage  `json:"details,omitempty"`
}

// CredentialInput is a transaction's credential, as the UI read it.
type CredentialInput struct {
	Kind   string `json:"kind"`
	Number string `json:"number"` // personal data: hashed and sealed, never stored in clear
}

// TransactionResponse is the 201 body.
type TransactionResponse struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

// transactionBody is the record body (kind kiosk.transaction).
type transactionBody struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	ServiceCode string          `json:"service_code"`
	Outcome     string          `json:"outcome"`
	StartedAt   time.Time       `json:"started_at"`
	EndedAt     time.Time       `json:"ended_at"`
	Credential  *credentialBody `json:"credential,omitempty"`
	Details     json.RawMessage `json:"details,omitempty"`
}

type credentialBody struct {
	Kind string `json:"kind"`
	Hash string `json:"hash"`
	// Sealed is the number sealed to the hub's key. Its name ends in
	// "_sealed" so the hub recognises, opens and masks it
	// (hub-protocol.md §4.4).
	Sealed string `json:"number_sealed,omitempty"`
}

type badRequest struct{ field, msg string }

func (e *badRequest) Error() string { return e.field + ": " + e.msg }

func validText(field, v string, max int) error {
	switch {
	case strings.TrimSpace(v) == "":
		return &badRequest{field, "required"}
	case len(v) > max:
		return &badRequest{field, fmt.Sprintf("longer than %d bytes", max)}
	case !utf8.ValidString(v):
		return &badRequest{field, "not valid UTF-8"}
	}
	return nil
}

func (t *TransactionRequest) validate() (start, end time.Time, err error) {
	if err = validText("type", t.Type, 64); err != nil {
		return
	}
	if err = validText("service_code", t.ServiceCode, 64); err != nil {
		return
	}
	if !outcomes[t.Outcome] {
		return start, end, &badRequest{"outcome", "must be completed, failed, cancelled or abandoned"}
	}
	if start, err = time.Parse(time.RFC3339Nano, t.StartedAt); err != nil {
		return start, end, &badRequest{"started_at", "must be an RFC 3339 time such as 2026-05-01T09:30:00+08:00"}
	}
	if end, err = time.Parse(time.RFC3339Nano, t.EndedAt); err != nil {
		return start, end, &badRequest{"ended_at", "must be an RFC 3339 time such as 2026-05-01T09:31:00+08:00"}
	}
	if end.Before(start) {
		return start, end, &badRequest{"ended_at", "before started_at"}
	}
	if c := t.Credential; c != nil {
		if _, ok := credentialKinds[c.Kind]; !ok {
			return start, end, &badRequest{"credential.kind", "must be idcard, sscard, qr, osdp, wiegand or keypad"}
		}
		if err = validText("credential.number", c.Number, 256); err != nil {
			return
		}
	}
	if len(t.Details) > 0 {
		if d := bytes.TrimSpace(t.Details); len(d) == 0 || d[0] != '{' {
			return start, end, &badRequest{"details", "must be a JSON object"}
		}
	}
	return start, end, nil
}

// readBody reads the request body, at most MaxBody bytes (an oversized
// body is a *http.MaxBytesError), in one allocation when the length is
// announced.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, s.o.MaxBody)
	if n := r.ContentLength; n >= 0 && n <= s.o.MaxBody {
		// One allocation of the announced size (plus one byte, so the
		// read that sees EOF needs no growth).
		b := make([]byte, 0, n+1)
		for {
			m, err := body.Read(b[len(b):cap(b)])
			b = b[:len(b)+m]
			if err == io.EOF {
				return b, nil
			}
			if err != nil {
				return nil, err
			}
			if len(b) == cap(b) {
				b = append(b, 0)[:len(b)] // grow; net/http enforces the length anyway
			}
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return &badRequest{te.Field, "wrong type: want " + te.Type.String()}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return &badRequest{strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field"}
		}
		return &badRequest{"body", "not a JSON object: " + err.Error()}
	}
	if dec.More() {
		return &badRequest{"body", "trailing data after the JSON object"}
	}
	return nil
}

// bodyError writes 413 or 400 for a readBody/decodeStrict error.
func bodyError(w http.ResponseWriter, err error) {
	var mb *http.MaxBytesError
	var br *badRequest
	switch {
	case errors.As(err, &mb):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", mb.Limit))
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
	default:
		writeError(w, http.StatusBadRequest, "invalid", "reading the body failed")
	}
}

// transactionID is random without an Idempotency-Key, else derived from
// it, so every record stored for one key carries the same id: "tx-" and
// the hex of sum, 16 bytes.
func (s *Server) transactionID(key string) (id string, sum [16]byte) {
	if key == "" {
		_, _ = rand.Read(sum[:]) // crypto/rand.Read never fails (Go ≥ 1.24 panics instead)
	} else {
		m, _ := s.idMACs.Get().(hash.Hash)
		if m == nil {
			m = hmac.New(sha256.New, s.o.IDSecret)
		}
		m.Reset()
		m.Write([]byte("kioskedge localapi idempotency-key\x00"))
		m.Write([]byte(key))
		var full [sha256.Size]byte
		copy(sum[:], m.Sum(full[:0]))
		s.idMACs.Put(m)
	}
	var b [3 + 32]byte
	copy(b[:], "tx-")
	hex.Encode(b[3:], sum[:])
	return string(b[:]), sum
}

func (s *Server) postTransaction(w http.ResponseWriter, r *http.Request) {
	raw, err := s.readBody(w, r)
	if err != nil {
		bodyError(w, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		writeError(w, http.StatusBadRequest, "invalid", "Idempotency-Key: longer than 255 bytes")
		return
	}
	status, body, replayed := s.transact(r.Context(), raw, key)
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeRaw(w, status, body)
}

func (s *Server) transact(ctx context.Context, raw []byte, key string) (status int, body []byte, replayed bool) {
	if key == "" {
		return s.storeTransaction(ctx, raw, "", nil)
	}
	fp := sha256.Sum256(raw)
	if s.once != nil {
		// The outbox's index decides, in the record's own transaction:
		// concurrent requests with one key are serialised by its
		// committer, and a replay is rebuilt from the first seq and id.
		return s.storeTransaction(ctx, raw, key, &fp)
	}
	for {
		e, owner := s.idem.begin(key, fp)
		if owner {
			status, body, replayed := s.storeTransaction(ctx, raw, key, &fp)
			if status == http.StatusCreated {
				s.idem.finish(e, status, body)
			} else {
				s.idem.abandon(e)
			}
			return status, body, replayed
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return http.StatusServiceUnavailable, mustJSON(errorBody("cancelled", "the request ended while the first one with this Idempotency-Key was in progress")), false
		}
		if !e.ok {
			continue // the first attempt failed; this one tries again
		}
		if e.fingerprint != fp {
			return http.StatusUnprocessableEntity, mustJSON(errorBody("idempotency_key_reused", "this Idempotency-Key was used with a different body")), false
		}
		return e.status, e.body, true
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs
	}
	return b
}

// idemMetaVersion starts the meta stored with a key in the outbox's
// idempotency index: the version, then the first 16 bytes of the SHA-256
// of the request body. The key is the transaction id's 16 bytes.
const idemMetaVersion = 1

// storeTransaction validates raw, appends the record and returns the
// response status and body. With a key (and fp, the SHA-256 of raw) and an
// Outbox that is a OnceAppender, the record is stored only if the outbox
// has not seen the key's transaction id; if it has, nothing is stored and
// the first response is rebuilt (replayed true), or 422 when the first
// body was different.
func (s *Server) storeTransaction(ctx context.Context, raw []byte, key string, fp *[32]byte) (status int, resp []byte, replayed bool) {
	var req TransactionRequest
	if !decodeTransactionFast(raw, &req) {
		slow := new(TransactionRequest) // a separate variable keeps req off the heap
		if err := decodeStrict(raw, slow); err != nil {
			return http.StatusBadRequest, mustJSON(errorBody("invalid", err.Error())), false
		}
		req = *slow
	}
	start, end, err := req.validate()
	if err != nil {
		return http.StatusBadRequest, mustJSON(errorBody("invalid", err.Error())), false
	}
	id, idSum := s.transactionID(key)
	tb := transactionBody{ID: id, Type: req.Type, ServiceCode: req.ServiceCode,
		Outcome: req.Outcome, StartedAt: start, EndedAt: end, Details: req.Details}
	if c := req.Credential; c != nil {
		if s.o.Protector == nil {
			return http.StatusServiceUnavailable, mustJSON(errorBody("privacy_unavailable", "no site key is configured: credentials cannot be recorded")), false
		}
		cred := credential.Credential{Kind: credentialKinds[c.Kind], Number: c.Number}
		cb := &credentialBody{Kind: c.Kind, Hash: s.o.Protector.Hash(cred)}
		sealed, err := s.o.Protector.Seal([]byte(c.Number))
		if err != nil {
			s.log.Error("sealing a credential failed", "err", err)
			return http.StatusServiceUnavailable, mustJSON(errorBody("privacy_unavailable", "sealing the credential failed")), false
		}
		cb.Sealed = sealed
		tb.Credential = cb
	}
	body, ok := appendTransactionBody(make([]byte, 0, recordBodySize(&tb)), &tb)
	if !ok {
		if body, err = json.Marshal(tb); err != nil {
			return http.StatusBadRequest, mustJSON(errorBody("invalid", "details: not valid JSON")), false
		}
	}
	if len(body) > wire.MaxBodyLen {
		return http.StatusRequestEntityTooLarge, mustJSON(errorBody("too_large", fmt.Sprintf("the record would be larger than %d bytes", wire.MaxBodyLen))), false
	}
	rec := wire.Record{Kind: KindTransaction, Class: wire.ClassCritical, Time: end, Body: body}
	var seq uint64
	if s.once != nil && key != "" {
		// Small entries keep the index cheap: the id's 16 bytes (already
		// a keyed hash of the key) and 16 bytes of the body's SHA-256.
		var meta [1 + 16]byte
		meta[0] = idemMetaVersion
		copy(meta[1:], fp[:16])
		var prior []byte
		seq, prior, err = s.once.AppendOnce(ctx, rec, idSum[:], meta[:])
		if err == nil && prior != nil {
			if !bytes.Equal(prior, meta[:]) {
				return http.StatusUnprocessableEntity, mustJSON(errorBody("idempotency_key_reused", "this Idempotency-Key was used with a different body")), false
			}
			replayed = true
		}
	} else {
		seq, err = s.o.Outbox.Append(ctx, rec)
	}
	if err != nil {
		s.log.Error("transaction not stored", "err", err)
		return http.StatusServiceUnavailable, mustJSON(errorBody("outbox_unavailable", "the transaction could not be stored; retry")), false
	}
	// tb.ID is "tx-" and hex, which json.Marshal writes unchanged.
	return http.StatusCreated, appendTransactionResponse(make([]byte, 0, 64), seq, tb.ID), replayed
}
