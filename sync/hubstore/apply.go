package hubstore

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// State is one agent's stored state: counters, coverage, the latest
// status and health. It is what both hub stores (this package's bbolt
// store and sync/hubpg) keep per agent, and the input and output of Plan.
type State struct {
	ID                             string
	Received, Duplicates, Declared uint64 // see AgentState
	AckedBefore                    uint64
	Coverage                       Coverage
	HasStatus, Online              bool
	BdSeq                          uint64
	Status, Birth, Health          []byte // raw JSON; never modified once set
}

// Snapshot returns the AgentState view of s. The byte slices are shared:
// callers must not modify them.
func (s *State) Snapshot() AgentState {
	return AgentState{
		ID:              s.ID,
		Received:        s.Received,
		Duplicates:      s.Duplicates,
		DeclaredDropped: s.Declared,
		AckedBefore:     s.AckedBefore,
		Contiguous:      s.Coverage.Contiguous(),
		Highest:         s.Coverage.Highest(),
		Missing:         s.Coverage.Missing(),
		HasStatus:       s.HasStatus,
		Online:          s.Online,
		BdSeq:           s.BdSeq,
		Status:          s.Status,
		Birth:           s.Birth,
		Health:          s.Health,
	}
}

// AgentPlan is what a write does to one agent.
type AgentPlan struct {
	State   State        // after the write
	Records []wire.Entry // records to store, each sequence once, not covered before
	Acked   bool         // an ack is due: a batch, or a birth advanced the coverage
	// StatusChanged: State.Status changed (and State.Birth when Online).
	StatusChanged bool
	HealthChanged bool
}

// Plan is what a write does to the store, computed in memory by PlanWrite
// before anything is written.
type Plan struct {
	Result Result       // including Acks, in first-seen agent order
	Agents []*AgentPlan // in first-seen order: batches, statuses, health
}

// Validate checks a write before any of it is applied: agent ids, batch
// ranges, entries strictly increasing inside their batch's range. It
// returns the number of entries, or an error wrapping ErrInvalid.
func (w *Write) Validate() (entries int, err error) {
	for i := range w.Batches {
		b := &w.Batches[i]
		if err := wire.ValidateID("agent", b.Agent); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if b.First == 0 || b.Last < b.First {
			return 0, fmt.Errorf("%w: range %d..%d", ErrInvalid, b.First, b.Last)
		}
		prev := b.First - 1
		for _, e := range b.Entries {
			if e.Seq <= prev || e.Seq > b.Last {
				return 0, fmt.Errorf("%w: sequence %d out of order or outside %d..%d", ErrInvalid, e.Seq, b.First, b.Last)
			}
			prev = e.Seq
		}
		entries += len(b.Entries)
	}
	for _, s := range w.Statuses {
		if err := wire.ValidateID("agent", s.Status.Agent); err != nil {
			return 0, fmt.Errorf("%w: status: %v", ErrInvalid, err)
		}
	}
	for _, h := range w.Health {
		if err := wire.ValidateID("agent", h.Agent); err != nil {
			return 0, fmt.Errorf("%w: health: %v", ErrInvalid, err)
		}
	}
	return entries, nil
}

// AgentIDs returns the distinct agent ids w touches, sorted: the order in
// which a store shared by several processes locks them.
func (w *Write) AgentIDs() []string {
	var ids []string
	for i := range w.Batches {
		ids = append(ids, w.Batches[i].Agent)
	}
	for i := range w.Statuses {
		ids = append(ids, w.Statuses[i].Status.Agent)
	}
	for i := range w.Health {
		ids = append(ids, w.Health[i].Agent)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// PlanWrite applies a validated w to agent states in memory, the decision
// logic of Store.Apply shared with sync/hubpg. load returns the current
// state of an agent (a zero State with ID set for an unknown one); it is
// called once per agent, in first-seen order, and its error is returned.
// PlanWrite does not modify what load returned (it clones the coverage).
//
// Records whose sequence is already covered — before this write or by an
// earlier batch of it — are counted as duplicates and not planned. A
// status whose BdSeq is lower than the agent's current one is counted as
// stale and ignored. Gap records (kind wire.KindGap) add their declared
// count to Declared. An accepted birth with AckedThrough A > 0 whose
// agent's coverage does not hold all of [1, A] adds [1, A] to the
// coverage (see Store.Apply) and makes an ack due.
func PlanWrite(w *Write, load func(id string) (State, error)) (*Plan, error) {
	p := &Plan{}
	byID := map[string]*AgentPlan{}
	get := func(id string) (*AgentPlan, error) {
		if ap, ok := byID[id]; ok {
			return ap, nil
		}
		st, err := load(id)
		if err != nil {
			return nil, err
		}
		st.ID = id
		st.Coverage = st.Coverage.Clone()
		ap := &AgentPlan{State: st}
		byID[id] = ap
		p.Agents = append(p.Agents, ap)
		return ap, nil
	}
	res := &p.Result
	for i := range w.Batches {
		b := &w.Batches[i]
		ap, err := get(b.Agent)
		if err != nil {
			return nil, err
		}
		ap.Acked = true
		a := &ap.State
		if a.Coverage.ContainsAll(b.First, b.Last) {
			n := uint64(len(b.Entries))
			a.Duplicates += n
			res.Duplicates += n
			continue
		}
		overlaps := a.Coverage.Overlaps(b.First, b.Last)
		for _, e := range b.Entries {
			if overlaps && a.Coverage.Contains(e.Seq) {
				a.Duplicates++
				res.Duplicates++
				continue
			}
			ap.Records = append(ap.Records, e)
			a.Received++
			res.Stored++
			if n, ok := GapCount(e.Raw); ok {
				a.Declared += n
				res.Declared += n
			}
		}
		a.Coverage.Add(b.First, b.Last)
	}
	for _, su := range w.Statuses {
		ap, err := get(su.Status.Agent)
		if err != nil {
			return nil, err
		}
		a := &ap.State
		if a.HasStatus && su.Status.BdSeq < a.BdSeq {
			res.Stale++
			continue
		}
		a.HasStatus, a.BdSeq = true, su.Status.BdSeq
		a.Online = su.Status.State == wire.StateOnline
		a.Status = bytes.Clone(su.Raw)
		if a.Online {
			a.Birth = a.Status
			if n := markAckedBefore(a, su.Status.AckedThrough); n > 0 {
				res.AckedBefore += n
				ap.Acked = true
			}
		}
		ap.StatusChanged = true
	}
	for _, hu := range w.Health {
		ap, err := get(hu.Agent)
		if err != nil {
			return nil, err
		}
		ap.State.Health = bytes.Clone(hu.Raw)
		ap.HealthChanged = true
	}
	for _, ap := range p.Agents {
		if ap.Acked {
			res.Acks = append(res.Acks, wire.Ack{Agent: ap.State.ID, Through: ap.State.Coverage.Contiguous()})
		}
		if m := ap.State.Coverage.Missing(); m != nil {
			if res.Missing == nil {
				res.Missing = map[string][]Range{}
			}
			res.Missing[ap.State.ID] = m
		}
	}
	return p, nil
}

// markAckedBefore covers [1, through] of a as stored by an earlier hub,
// unless a already covers all of it (or through is 0), and returns how many
// sequences became covered. Whenever that is above 0, a's contiguous
// coverage advanced: it was below through and now is at least through.
func markAckedBefore(a *State, through uint64) uint64 {
	if through == 0 || a.Coverage.ContainsAll(1, through) {
		return 0
	}
	before := a.Coverage.Count()
	a.Coverage.Add(1, through)
	n := a.Coverage.Count() - before
	a.AckedBefore += n
	return n
}
