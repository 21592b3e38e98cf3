package localapi

import (
	"encoding/json"
	"strconv"
	"time"
)

// The transaction path's JSON fast paths. POST /v1/transactions is the
// agent's hot endpoint; encoding/json's reflection dominated its CPU. The
// fast paths accept only the common, plain shape and report !ok for
// anything else, and the caller then falls back to encoding/json, so every
// answer (values and error messages) stays exactly encoding/json's.
// FuzzTransactionFastPaths checks both directions.

// decodeTransactionFast decodes b into req when b is a JSON object whose
// keys are TransactionRequest's exact field names, each at most once, with
// plain string values (printable ASCII, no escapes), an optional
// credential object {"kind","number"} of plain strings and an optional
// details object. It reports false, leaving req in an unspecified state,
// for anything else: the caller then decodes with decodeStrict.
func decodeTransactionFast(b []byte, req *TransactionRequest) bool {
	p := fastParser{b: b}
	if !p.skipWS() || !p.members(func(key string) (bit uint8, ok bool) {
		switch key {
		case "type":
			req.Type, ok = p.plainString()
			return 1, ok
		case "service_code":
			req.ServiceCode, ok = p.plainString()
			return 2, ok
		case "outcome":
			req.Outcome, ok = p.plainString()
			return 4, ok
		case "started_at":
			req.StartedAt, ok = p.plainString()
			return 8, ok
		case "ended_at":
			req.EndedAt, ok = p.plainString()
			return 16, ok
		case "credential":
			req.Credential = &CredentialInput{}
			return 32, p.credential(req.Credential)
		case "details":
			req.Details, ok = p.object()
			return 64, ok
		}
		return 0, false // unknown, or a case-insensitive match encoding/json would accept
	}) {
		return false
	}
	p.skipWS()
	return p.i == len(p.b) // trailing data: let decodeStrict name it
}

type fastParser struct {
	b []byte
	i int
}

// skipWS skips JSON whitespace and reports whether a byte follows.
func (p *fastParser) skipWS() bool {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return true
		}
	}
	return false
}

func (p *fastParser) colon() bool {
	if !p.skipWS() || p.b[p.i] != ':' {
		return false
	}
	p.i++
	return p.skipWS()
}

// plainString reads a string of printable ASCII without escapes.
func (p *fastParser) plainString() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			p.i = j + 1
			return string(p.b[start:j]), true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return "", false
		}
	}
	return "", false
}

// members reads the object at p.i, whose keys must be plain strings. For
// each member, field reads the value (p.i is past the colon) and returns
// the key's bit, 0 for a key it does not take, and whether the value was
// read; a key given twice reports false, like anything not plain.
func (p *fastParser) members(field func(key string) (bit uint8, ok bool)) bool {
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return false
	}
	p.i++
	if !p.skipWS() {
		return false
	}
	if p.b[p.i] == '}' {
		p.i++
		return true
	}
	var seen uint8
	for {
		key, ok := p.plainString()
		if !ok || !p.colon() {
			return false
		}
		bit, ok := field(key)
		if !ok || bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		if !p.skipWS() {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			if !p.skipWS() {
				return false
			}
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// credential reads {"kind": plain, "number": plain}, each key at most
// once, in any order.
func (p *fastParser) credential(c *CredentialInput) bool {
	return p.members(func(key string) (bit uint8, ok bool) {
		switch key {
		case "kind":
			c.Kind, ok = p.plainString()
			return 1, ok
		case "number":
			c.Number, ok = p.plainString()
			return 2, ok
		}
		return 0, false
	})
}

// object returns the bytes of the JSON object at p.i (aliasing p.b), found
// by matching brackets outside strings and then checked by json.Valid.
func (p *fastParser) object() (json.RawMessage, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, false
	}
	start, depth, inString := p.i, 0, false
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if inString {
			switch c {
			case '\\':
				j++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				v := p.b[start : j+1 : j+1]
				if !json.Valid(v) {
					return nil, false
				}
				p.i = j + 1
				return v, true
			}
		}
	}
	return nil, false
}

// plainOut reports whether json.Marshal writes s unchanged between quotes:
// printable ASCII with none of `"`, `\`, '<', '>', '&'.
func plainOut(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// compactOut reports whether json.Marshal writes the valid JSON raw
// unchanged: no whitespace, no '<', '>', '&', and nothing outside ASCII
// (U+2028 and U+2029 are escaped).
func compactOut(raw []byte) bool {
	for _, c := range raw {
		switch {
		case c == ' ', c == '\t', c == '\n', c == '\r', c == '<', c == '>', c == '&', c >= 0x80:
			return false
		}
	}
	return true
}

// appendTransactionBody appends json.Marshal(tb)'s bytes and reports true
// when every string is plainOut, Details is compactOut and the times are
// in years 0 to 9999; otherwise it reports false and the caller marshals
// with encoding/json.
func appendTransactionBody(dst []byte, tb *transactionBody) ([]byte, bool) {
	if !plainOut(tb.ID) || !plainOut(tb.Type) || !plainOut(tb.ServiceCode) || !plainOut(tb.Outcome) ||
		!plainYear(tb.StartedAt) || !plainYear(tb.EndedAt) || !compactOut(tb.Details) {
		return dst, false
	}
	if c := tb.Credential; c != nil && (!plainOut(c.Kind) || !plainOut(c.Hash) || !plainOut(c.Sealed)) {
		return dst, false
	}
	dst = append(dst, `{"id":"`...)
	dst = append(dst, tb.ID...)
	dst = append(dst, `","type":"`...)
	dst = append(dst, tb.Type...)
	dst = append(dst, `","service_code":"`...)
	dst = append(dst, tb.ServiceCode...)
	dst = append(dst, `","outcome":"`...)
	dst = append(dst, tb.Outcome...)
	dst = append(dst, `","started_at":"`...)
	dst = tb.StartedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","ended_at":"`...)
	dst = tb.EndedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if c := tb.Credential; c != nil {
		dst = append(dst, `,"credential":{"kind":"`...)
		dst = append(dst, c.Kind...)
		dst = append(dst, `","hash":"`...)
		dst = append(dst, c.Hash...)
		dst = append(dst, '"')
		if c.Sealed != "" {
			dst = append(dst, `,"number_sealed":"`...)
			dst = append(dst, c.Sealed...)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	if len(tb.Details) > 0 {
		dst = append(dst, `,"details":`...)
		dst = append(dst, tb.Details...)
	}
	return append(dst, '}'), true
}

// recordBodySize is appendTransactionBody's output size, give or take the
// times' fractions.
func recordBodySize(tb *transactionBody) int {
	n := 200 + len(tb.ID) + len(tb.Type) + len(tb.ServiceCode) + len(tb.Outcome) + 2*len(time.RFC3339Nano) + len(tb.Details)
	if c := tb.Credential; c != nil {
		n += len(c.Kind) + len(c.Hash) + len(c.Sealed)
	}
	return n
}

// plainYear reports whether time.Time.MarshalJSON accepts t and writes
// exactly its RFC3339Nano format: a year in [0, 9999] and an offset in
// whole minutes.
func plainYear(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off%60 == 0 && off > -24*3600 && off < 24*3600
}

// appendTransactionResponse appends json.Marshal(TransactionResponse{seq,
// id}) for a plainOut id.
func appendTransactionResponse(dst []byte, seq uint64, id string) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"id":"`...)
	dst = append(dst, id...)
	return append(dst, `"}`...)
}
