package localapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// fastSeeds are transaction bodies: the plain shape the fast path takes
// and near misses it must hand to encoding/json.
var fastSeeds = []string{
	`{"type":"t","service_code":"S","outcome":"completed","started_at":"2026-05-01T09:30:00+08:00","ended_at":"2026-05-01T09:31:00+08:00"}`,
	` { "type" : "t" , "service_code":"S","outcome":"failed","started_at":"2026-05-01T09:30:00.123Z","ended_at":"2026-05-01T09:31:00.5-03:30",` +
		`"credential":{"kind":"idcard","number":"460105190001011234"},"details":{"a":[1,2,{"b":"}"}],"c":"\"{"}} ` + "\n",
	`{"type":"t","service_code":"S","outcome":"completed","started_at":"2026-05-01T09:30:00Z","ended_at":"2026-05-01T09:31:00Z","details":{ "x" : "<a&b>" }}`,
	`{"type":"t","service_code":"S","outcome":"completed","started_at":"2026-05-01T09:30:00Z","ended_at":"2026-05-01T09:31:00Z","details":{"x":"\u2028é"}}`,
	`{"Type":"t"}`,
	`{"type":"t","type":"u"}`,
	`{"type":"caf\u00e9"}`,
	`{"type":"café"}`,
	`{"type":1}`,
	`{"type":null}`,
	`{"credential":null}`,
	`{"credential":{"kind":"qr","number":"x","extra":1}}`,
	`{"details":null}`,
	`{"details":[1]}`,
	`{"details":{"a":}}`,
	`{"details":{"a":1}`,
	`{"bogus":1}`,
	`{"type":"t",}`,
	`{,}`,
	`{}`,
	`{} {}`,
	`{}x`,
	`[]`,
	``,
	`{"type":"t"`,
	`{"type":"a	b"}`,
}

// FuzzTransactionFastPaths checks the fast paths against encoding/json: a
// body decodeTransactionFast accepts decodes the same with decodeStrict,
// and a record body appendTransactionBody writes is json.Marshal's.
func FuzzTransactionFastPaths(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastDecode(t, b)
	})
}

func checkFastDecode(t *testing.T, b []byte) {
	t.Helper()
	var fast, slow TransactionRequest
	if !decodeTransactionFast(b, &fast) {
		return // the caller falls back to decodeStrict
	}
	if err := decodeStrict(b, &slow); err != nil {
		t.Fatalf("fast path accepted a body encoding/json refuses (%v): %q", err, b)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast path decoded %+v, encoding/json %+v, from %q", fast, slow, b)
	}
	start, end, err := fast.validate()
	if err != nil {
		return
	}
	tb := transactionBody{ID: "tx-0123abcd", Type: fast.Type, ServiceCode: fast.ServiceCode, Outcome: fast.Outcome,
		StartedAt: start, EndedAt: end, Details: fast.Details}
	if c := fast.Credential; c != nil {
		tb.Credential = &credentialBody{Kind: c.Kind, Hash: c.Number + "-hash", Sealed: c.Number}
	}
	checkFastEncode(t, &tb)
}

func checkFastEncode(t *testing.T, tb *transactionBody) {
	t.Helper()
	want, werr := json.Marshal(tb)
	got, ok := appendTransactionBody(nil, tb)
	if !ok {
		return
	}
	if werr != nil {
		t.Fatalf("fast encoding wrote %s where json.Marshal fails: %v", got, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("fast encoding\n%s\njson.Marshal\n%s", got, want)
	}
}

func TestTransactionFastPaths(t *testing.T) {
	taken := 0
	for _, s := range fastSeeds {
		var req TransactionRequest
		if decodeTransactionFast([]byte(s), &req) {
			taken++
		}
		checkFastDecode(t, []byte(s))
	}
	if taken < 3 {
		t.Errorf("the fast path took %d of the seeds, want the plain ones", taken)
	}

	// Encoding edge cases the decoder never produces.
	at := time.Date(2026, 5, 1, 9, 30, 0, 123456789, time.FixedZone("", 8*3600))
	for _, tb := range []transactionBody{
		{ID: "tx-1", Type: "a<b", StartedAt: at, EndedAt: at},
		{ID: "tx-1", Type: "é", StartedAt: at, EndedAt: at},
		{ID: "tx-1", StartedAt: at, EndedAt: at.In(time.FixedZone("", 5*3600+30*60+7))},
		{ID: "tx-1", StartedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), EndedAt: at},
		{ID: "tx-1", StartedAt: at, EndedAt: at, Details: json.RawMessage(`{"a": 1}`)},
		{ID: "tx-1", StartedAt: at, EndedAt: at, Credential: &credentialBody{Kind: "qr", Hash: "h"}},
		{ID: "tx-1", StartedAt: at.UTC(), EndedAt: at, Credential: &credentialBody{Kind: "qr", Hash: "h", Sealed: "v1.x"},
			Details: json.RawMessage(`{"a":[1,{"b":null}]}`)},
	} {
		checkFastEncode(t, &tb)
	}

	got := appendTransactionResponse(nil, 42, "tx-00ff")
	want, _ := json.Marshal(TransactionResponse{Seq: 42, ID: "tx-00ff"})
	if !bytes.Equal(got, want) {
		t.Errorf("response %s, json.Marshal %s", got, want)
	}
}
