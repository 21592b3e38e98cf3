package hexjson

import (
	"encoding/json"
	"testing"
)

func TestHex(t *testing.T) {
	var v struct{ B Hex }
	if err := json.Unmarshal([]byte(`{"B":"00ff10"}`), &v); err != nil || string(v.B) != "\x00\xff\x10" {
		t.Fatalf("got %x, %v", v.B, err)
	}
	for _, bad := range []string{`{"B":"0"}`, `{"B":"zz"}`, `{"B":12}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
