package localapi

import (
	"net/http"
	"strings"
	"testing"
)

const pageOrigin = "http://127.0.0.1:8123"

func corsDo(t *testing.T, method, url, origin string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

var preflight = map[string]string{
	"Access-Control-Request-Method":  "POST",
	"Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
}

// TestCORSAllowedOrigin: an allowed origin's preflight is answered 204
// without the token, naming the methods and headers the page needs, and
// its real requests carry Access-Control-Allow-Origin (401 included, so
// the page can read the error).
func TestCORSAllowedOrigin(t *testing.T) {
	r := start(t, func(o *Options) { o.AllowedOrigins = []string{pageOrigin} })
	res := corsDo(t, http.MethodOptions, r.url+"/v1/transactions", pageOrigin, preflight)
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: status %d, want 204 without a token", res.StatusCode)
	}
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != pageOrigin {
		t.Errorf("preflight Allow-Origin %q, want %q", got, pageOrigin)
	}
	for _, want := range []string{"Authorization", "Content-Type", "Idempotency-Key"} {
		if !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), want) {
			t.Errorf("preflight Allow-Headers %q lacks %s", res.Header.Get("Access-Control-Allow-Headers"), want)
		}
	}
	if !strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight Allow-Methods %q lacks POST", res.Header.Get("Access-Control-Allow-Methods"))
	}

	res = corsDo(t, http.MethodGet, r.url+"/v1/health", pageOrigin, map[string]string{"Authorization": "Bearer " + testToken})
	if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != pageOrigin {
		t.Errorf("GET with token: status %d Allow-Origin %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	if !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary %q lacks Origin", res.Header.Values("Vary"))
	}
	res = corsDo(t, http.MethodGet, r.url+"/v1/health", pageOrigin, nil)
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("Access-Control-Allow-Origin") != pageOrigin {
		t.Errorf("GET without token: status %d Allow-Origin %q; want 401 readable by the page", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestCORSOtherOrigins: other origins, and every origin when none is
// configured, get no CORS headers; their preflight is not answered 204.
func TestCORSOtherOrigins(t *testing.T) {
	for name, allowed := range map[string][]string{"configured": {pageOrigin}, "none configured": nil} {
		t.Run(name, func(t *testing.T) {
			r := start(t, func(o *Options) { o.AllowedOrigins = allowed })
			for _, origin := range []string{"http://evil.example", "http://127.0.0.1:8124", "null"} {
				if allowed == nil {
					origin = pageOrigin // not even the demo's origin without configuration
				}
				res := corsDo(t, http.MethodOptions, r.url+"/v1/transactions", origin, preflight)
				if res.StatusCode == http.StatusNoContent {
					t.Errorf("%s: preflight answered 204", origin)
				}
				res2 := corsDo(t, http.MethodGet, r.url+"/v1/health", origin, map[string]string{"Authorization": "Bearer " + testToken})
				for _, h := range []*http.Response{res, res2} {
					for k := range h.Header {
						if strings.HasPrefix(k, "Access-Control-") {
							t.Errorf("%s %s: header %s = %q", origin, h.Request.Method, k, h.Header.Get(k))
						}
					}
				}
			}
		})
	}
}
