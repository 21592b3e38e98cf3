package hub

import (
	"encoding/json"
	"net/http"

	"github.com/kioskedge/kioskedge/sync/hubstore"
)

// AgentInfo is one row of GET /api/agents.
type AgentInfo struct {
	ID                string          `json:"id"`
	Online            bool            `json:"online"`
	LastBirth         json.RawMessage `json:"last_birth"`  // latest "online" status, null if none
	LastStatus        json.RawMessage `json:"last_status"` // latest accepted status, null if none
	LastHealth        json.RawMessage `json:"last_health"` // null if none
	Received          uint64          `json:"received"`
	HighestContiguous uint64          `json:"highest_contiguous"`
}

// Received is the answer of GET /api/agents/{id}/received.
type Received struct {
	Count             uint64      `json:"count"` // records stored, duplicates excluded
	HighestContiguous uint64      `json:"highest_contiguous"`
	Highest           uint64      `json:"highest"`
	Missing           [][2]uint64 `json:"missing"` // holes between 1 and highest, never null
	DuplicatesDropped uint64      `json:"duplicates_dropped"`
	DeclaredDropped   uint64      `json:"declared_dropped"`
	// AckedBefore counts sequences an earlier hub stored and acked, as the
	// agent's birth said (a lost or replaced store); the hub does not hold
	// them (hub-protocol.md §5.3).
	AckedBefore uint64 `json:"acked_before"`
}

func info(a hubstore.AgentState) AgentInfo {
	return AgentInfo{
		ID:                a.ID,
		Online:            a.Online,
		LastBirth:         a.Birth,
		LastStatus:        a.Status,
		LastHealth:        a.Health,
		Received:          a.Received,
		HighestContiguous: a.Contiguous,
	}
}

// Agents returns every agent the hub knows, sorted by id.
func (h *Hub) Agents() []AgentInfo {
	all := h.store.Agents()
	out := make([]AgentInfo, len(all))
	for i, a := range all {
		out[i] = info(a)
	}
	return out
}

// AgentReceived returns what the hub holds for agent id, and false if it
// has never heard of it.
func (h *Hub) AgentReceived(id string) (Received, bool) {
	a, ok := h.store.AgentState(id)
	if !ok {
		return Received{}, false
	}
	r := Received{
		Count:             a.Received,
		HighestContiguous: a.Contiguous,
		Highest:           a.Highest,
		Missing:           make([][2]uint64, len(a.Missing)),
		DuplicatesDropped: a.Duplicates,
		DeclaredDropped:   a.DeclaredDropped,
		AckedBefore:       a.AckedBefore,
	}
	for i, m := range a.Missing {
		r.Missing[i] = [2]uint64{m.First, m.Last}
	}
	return r, true
}

// Handler returns the HTTP JSON API:
//
//	GET /api/agents                 []AgentInfo
//	GET /api/agents/{id}/received   Received, or 404 {"error": …}
//	GET /api/agents/{id}/records    RecordsPage (?after=N&limit=M&reveal=1), or 404, 400, 403
//	GET /api/stats                  Stats
//	GET /api/lifecycle              []LifecycleInfo (gaps, stale statuses, rebirths)
//
// Records show sealed fields masked (hub-protocol.md §4.4; see Records).
//
// Other methods get 405 and other paths 404 (from net/http's mux).
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/agents", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, h.Agents())
	})
	mux.HandleFunc("GET /api/agents/{id}/received", func(w http.ResponseWriter, r *http.Request) {
		rec, ok := h.AgentReceived(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown agent"})
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
	mux.HandleFunc("GET /api/agents/{id}/records", h.serveRecords)
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, h.Stats())
	})
	mux.HandleFunc("GET /api/lifecycle", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, h.Lifecycle())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The client may have gone away; there is nobody to tell.
	_ = json.NewEncoder(w).Encode(v)
}
