package localapi

import (
	"net/http"
	"slices"
)

// CORS: the kiosk UI is normally served from its own origin (a file or a
// vendor's local web server), so a browser calling the API needs CORS
// headers. Only the origins in Options.AllowedOrigins get them; with none
// configured the API sends no CORS headers at all and browsers keep
// cross-origin pages out. A preflight (OPTIONS with
// Access-Control-Request-Method) from an allowed origin is answered 204
// without the token, as browsers send preflights without credentials; the
// actual request still needs it.

const (
	corsMethods = "GET, POST"
	corsHeaders = "Authorization, Content-Type, Idempotency-Key"
	corsMaxAge  = "600"
)

func (s *Server) cors(next http.Handler) http.Handler {
	if len(s.o.AllowedOrigins) == 0 {
		return next
	}
	allowed := slices.Clone(s.o.AllowedOrigins)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !slices.Contains(allowed, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedOrigin reports whether origin gets CORS headers.
func (s *Server) allowedOrigin(origin string) bool {
	return slices.Contains(s.o.AllowedOrigins, origin)
}
