package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// SealedSuffix ends the name of every body field that may hold a sealed
// value (hub-protocol.md §4.4).
const SealedSuffix = "_sealed"

// Records API paging.
const (
	DefaultRecordsLimit = 100
	MaxRecordsLimit     = 1000
)

// What the records API did with a sealed field (RecordView.Sealed).
const (
	SealedKept       = "sealed"     // no hub key: the value is shown as stored
	SealedMasked     = "masked"     // opened and masked
	SealedRevealed   = "revealed"   // opened and shown raw (reveal=1, -reveal-personal-data)
	SealedUnopenable = "unopenable" // does not open with the hub's key (another key, altered, malformed); shown as stored
)

// RecordView is one stored record as the records API shows it.
type RecordView struct {
	Seq   uint64    `json:"seq"`
	Kind  string    `json:"kind,omitempty"`
	Class string    `json:"class,omitempty"`
	Time  time.Time `json:"time,omitzero"` // RFC 3339 with the agent's UTC offset
	// Body is the record's JSON body with sealed fields treated as Sealed
	// says; null when the body is empty or not JSON (see Error).
	Body json.RawMessage `json:"body"`
	// Sealed maps the path of each sealed field in Body ("number_sealed",
	// "credential.number_sealed", "list_sealed[0]") to what was done with
	// it: SealedKept, SealedMasked, SealedRevealed or SealedUnopenable.
	Sealed map[string]string `json:"sealed,omitempty"`
	// Error says why the record or its body could not be shown.
	Error string `json:"error,omitempty"`
}

// RecordsPage is the answer of GET /api/agents/{id}/records.
type RecordsPage struct {
	Agent   string       `json:"agent"`
	Records []RecordView `json:"records"` // in sequence order; never null
	// NextAfter is the after= of the next page: the last sequence shown,
	// or the request's after when the page is empty.
	NextAfter uint64 `json:"next_after"`
	More      bool   `json:"more"`     // more records follow NextAfter
	Revealed  bool   `json:"revealed"` // raw personal data may be in this page
}

// RecordsQuery selects a page of records.
type RecordsQuery struct {
	After  uint64 // records with a sequence > After
	Limit  int    // at most this many; <= 0 means DefaultRecordsLimit, capped at MaxRecordsLimit
	Reveal bool   // show opened values raw; honoured only with Options.RevealPersonalData
}

// Errors of Records.
var (
	// ErrUnknownAgent: the hub has never heard of the agent.
	ErrUnknownAgent = errors.New("hub: unknown agent")
	// ErrRevealDisabled: Reveal was asked but Options.RevealPersonalData
	// is off.
	ErrRevealDisabled = errors.New("hub: revealing personal data is not enabled (hubd -reveal-personal-data)")
)

var errPageFull = errors.New("page full")

// Records returns a page of agent's stored records, decoded, with sealed
// fields opened and masked (or revealed) as RecordsQuery and Options say.
// It returns ErrUnknownAgent for an agent the hub does not know,
// ErrRevealDisabled for a reveal the options do not allow, or the store's
// error. A record or body that does not decode is shown with Error set,
// never skipped. Revealed values are never logged; a revealing call logs
// that it happened (agent, range, field count).
func (h *Hub) Records(agent string, q RecordsQuery) (RecordsPage, error) {
	if _, ok := h.store.AgentState(agent); !ok {
		return RecordsPage{}, ErrUnknownAgent
	}
	if q.Reveal && !h.opts.RevealPersonalData {
		return RecordsPage{}, ErrRevealDisabled
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultRecordsLimit
	}
	limit = min(limit, MaxRecordsLimit)
	page := RecordsPage{Agent: agent, Records: []RecordView{}, NextAfter: q.After}
	if q.After == math.MaxUint64 {
		return page, nil
	}
	// Copy the raw records out of the read transaction; opening sealed
	// values is slow enough not to hold it.
	var raws []wire.Entry
	err := h.store.ForEach(agent, q.After+1, func(seq uint64, raw []byte) error {
		if len(raws) == limit {
			page.More = true
			return errPageFull
		}
		raws = append(raws, wire.Entry{Seq: seq, Raw: bytes.Clone(raw)})
		return nil
	})
	if err != nil && !errors.Is(err, errPageFull) {
		return RecordsPage{}, fmt.Errorf("hub: reading records: %w", err)
	}
	reveal := q.Reveal && h.opts.SealKey != nil
	revealed := 0
	for _, e := range raws {
		v := h.view(agent, e, reveal)
		for _, st := range v.Sealed {
			if st == SealedRevealed {
				revealed++
			}
		}
		page.Records = append(page.Records, v)
		page.NextAfter = e.Seq
	}
	page.Revealed = revealed > 0
	if page.Revealed {
		h.log.Warn("personal data revealed through the records API",
			"agent", agent, "after", q.After, "next_after", page.NextAfter, "fields", revealed)
	}
	return page, nil
}

func (h *Hub) view(agent string, e wire.Entry, reveal bool) RecordView {
	r, err := wire.UnmarshalRecord(e.Seq, agent, e.Raw)
	if err != nil {
		return RecordView{Seq: e.Seq, Error: "record does not decode: " + err.Error()}
	}
	v := RecordView{Seq: e.Seq, Kind: r.Kind, Class: r.Class.String(), Time: r.Time}
	if len(r.Body) == 0 {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	var body any
	if err := dec.Decode(&body); err != nil || dec.More() || !json.Valid(r.Body) {
		v.Error = "body is not JSON"
		return v
	}
	sealedFields := map[string]string{}
	body = h.walk(body, "", false, reveal, sealedFields)
	if len(sealedFields) == 0 {
		v.Body = json.RawMessage(r.Body)
		return v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		v.Error = "body does not re-encode"
		return v
	}
	v.Body = json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n"))
	v.Sealed = sealedFields
	return v
}

// walk returns x with every sealed value in a field named *_sealed (or in
// an array under one) treated per reveal, recording each in fields.
func (h *Hub) walk(x any, path string, underSealed, reveal bool, fields map[string]string) any {
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			x[k] = h.walk(v, p, strings.HasSuffix(k, SealedSuffix), reveal, fields)
		}
		return x
	case []any:
		for i, v := range x {
			x[i] = h.walk(v, path+"["+strconv.Itoa(i)+"]", underSealed, reveal, fields)
		}
		return x
	case string:
		if !underSealed || !sealed.IsSealed(x) {
			return x
		}
		if h.opts.SealKey == nil {
			fields[path] = SealedKept
			return x
		}
		pt, err := sealed.Open(h.opts.SealKey, x)
		if err != nil {
			fields[path] = SealedUnopenable
			return x
		}
		if reveal {
			fields[path] = SealedRevealed
			return string(pt)
		}
		fields[path] = SealedMasked
		return h.mask(path, string(pt))
	default:
		return x
	}
}

func (h *Hub) mask(path, value string) string {
	if h.opts.Mask == nil {
		return "********"
	}
	field := path
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	return h.opts.Mask(field, value)
}

// parseRecordsQuery reads after, limit and reveal from the URL query.
func parseRecordsQuery(r *http.Request) (RecordsQuery, error) {
	var q RecordsQuery
	v := r.URL.Query()
	if s := v.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, fmt.Errorf("after: not a sequence number")
		}
		q.After = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxRecordsLimit {
			return q, fmt.Errorf("limit: want 1..%d", MaxRecordsLimit)
		}
		q.Limit = n
	}
	switch v.Get("reveal") {
	case "", "0", "false":
	case "1", "true":
		q.Reveal = true
	default:
		return q, fmt.Errorf("reveal: want 1 or 0")
	}
	return q, nil
}

func (h *Hub) serveRecords(w http.ResponseWriter, r *http.Request) {
	q, err := parseRecordsQuery(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	page, err := h.Records(r.PathValue("id"), q)
	switch {
	case errors.Is(err, ErrUnknownAgent):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown agent"})
	case errors.Is(err, ErrRevealDisabled):
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
	case err != nil:
		h.log.Error("records api", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "store read failed"})
	default:
		if page.Revealed {
			w.Header().Set("Cache-Control", "no-store")
		}
		writeJSON(w, http.StatusOK, page)
	}
}
