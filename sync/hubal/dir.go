package hubal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"

	"github.com/kioskedge/kioskedge/sync/internal/atomicfile"
)

// Errors of the package.
var (
	ErrVersion  = errors.New("hubal: version not above the latest")
	ErrNoList   = errors.New("hubal: no such list version")
	ErrCorrupt  = errors.New("hubal: list directory corrupt")
	ErrOptions  = errors.New("hubal: invalid options")
	ErrNoChunks = errors.New("hubal: a snapshot needs at least one chunk")
)

// Info describes one published version (its info.json).
type Info struct {
	Version    uint64    `json:"version"`
	Chunks     int       `json:"chunks"`
	Entries    uint64    `json:"entries"`
	Schedules  uint64    `json:"schedules"`
	Bytes      int64     `json:"bytes"`  // snapshot messages, headers included
	SHA256     string    `json:"sha256"` // of the concatenated chunks, hex
	DeltaFrom  uint64    `json:"delta_from,omitempty"`
	DeltaBytes int64     `json:"delta_bytes,omitempty"` // 0: no delta
	Upserts    int       `json:"upserts,omitempty"`
	Deletes    int       `json:"deletes,omitempty"`
	Published  time.Time `json:"published"`
}

// HasDelta reports whether the version has a delta from DeltaFrom.
func (i Info) HasDelta() bool { return i.DeltaBytes > 0 }

// Publication is one new version for Dir.Publish.
type Publication struct {
	Version uint64
	// Chunks are the snapshot's chunks (firmware-specs/allowlist.md §4),
	// in order, entry keys ascending across them.
	Chunks             [][]byte
	Entries, Schedules uint64 // counts, for Info
	// Delta, if not nil, moves an agent from Delta.From (the latest
	// version published before) to Version.
	Delta *wire.Delta
}

// Dir is a directory of published versions. Its methods are safe for
// concurrent use in one process; two processes publishing into one
// directory at once must not happen (the rename makes the loser fail).
type Dir struct {
	path string
	mu   sync.Mutex // Publish, Prune
	now  func() time.Time

	// The snapshot read last, kept: a published version never changes, and
	// every agent asking for a snapshot wants the latest.
	cacheMu sync.Mutex
	cacheV  uint64
	cache   [][]byte
}

// Open opens (creating if needed) the list directory at path and removes
// temporaries a crash left. It returns the file system's error.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("hubal: %w", err)
	}
	des, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("hubal: %w", err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(path, de.Name())); err != nil {
				return nil, fmt.Errorf("hubal: removing a leftover: %w", err)
			}
		}
	}
	return &Dir{path: path, now: time.Now}, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

func versionName(v uint64) string { return fmt.Sprintf("%020d", v) }

func chunkName(i int) string { return fmt.Sprintf("chunk-%06d", i) }

// List returns the published versions, ascending. It returns the file
// system's error.
func (d *Dir) List() ([]uint64, error) {
	des, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("hubal: %w", err)
	}
	var vs []uint64
	for _, de := range des {
		if len(de.Name()) != 20 || !de.IsDir() {
			continue
		}
		if v, err := strconv.ParseUint(de.Name(), 10, 64); err == nil && v > 0 {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// Latest returns the highest published version, 0 when there is none.
func (d *Dir) Latest() (uint64, error) {
	vs, err := d.List()
	if err != nil || len(vs) == 0 {
		return 0, err
	}
	return vs[len(vs)-1], nil
}

// Info reads version v's info. It returns an error wrapping ErrNoList when
// v is not published, ErrCorrupt when its info does not decode.
func (d *Dir) Info(v uint64) (Info, error) {
	var info Info
	b, err := os.ReadFile(filepath.Join(d.path, versionName(v), "info.json"))
	if errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("%w: %d", ErrNoList, v)
	}
	if err != nil {
		return info, fmt.Errorf("hubal: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Version != v || info.Chunks < 1 {
		return Info{}, fmt.Errorf("%w: version %d info", ErrCorrupt, v)
	}
	return info, nil
}

// Snapshot returns version v's chunk messages, in order. Errors are Info's,
// the file system's, or ErrCorrupt for a message that does not decode as
// chunk i of v.
func (d *Dir) Snapshot(v uint64) ([][]byte, error) {
	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	if d.cacheV == v && d.cache != nil {
		// Still published? Prune may have removed it.
		if _, err := os.Stat(filepath.Join(d.path, versionName(v))); err == nil {
			return slices.Clone(d.cache), nil
		}
	}
	msgs, err := d.readSnapshot(v)
	if err != nil {
		return nil, err
	}
	d.cacheV, d.cache = v, msgs
	return slices.Clone(msgs), nil
}

func (d *Dir) readSnapshot(v uint64) ([][]byte, error) {
	info, err := d.Info(v)
	if err != nil {
		return nil, err
	}
	msgs := make([][]byte, info.Chunks)
	for i := range msgs {
		b, err := os.ReadFile(filepath.Join(d.path, versionName(v), chunkName(i)))
		if err != nil {
			return nil, fmt.Errorf("%w: version %d: %v", ErrCorrupt, v, err)
		}
		m, err := wire.DecodeAllowlistMessage(b)
		if err != nil || m.Type != wire.AllowlistChunk || m.Version != v || int(m.Index) != i || int(m.Total) != info.Chunks {
			return nil, fmt.Errorf("%w: version %d chunk %d", ErrCorrupt, v, i)
		}
		msgs[i] = b
	}
	return msgs, nil
}

// Chunks returns version v's snapshot chunks (allowlist.md §4) without
// their message headers, for a publisher computing the next delta. The
// chunks must not be modified.
func (d *Dir) Chunks(v uint64) ([][]byte, error) {
	msgs, err := d.Snapshot(v)
	for i, m := range msgs {
		msgs[i] = m[wire.AllowlistHeaderLen:]
	}
	return msgs, err
}

// Delta returns version v's delta message; ok is false when v has none.
// Errors are as for Snapshot.
func (d *Dir) Delta(v uint64) (msg []byte, from uint64, ok bool, err error) {
	info, err := d.Info(v)
	if err != nil || !info.HasDelta() {
		return nil, 0, false, err
	}
	b, err := os.ReadFile(filepath.Join(d.path, versionName(v), "delta"))
	if err != nil {
		return nil, 0, false, fmt.Errorf("%w: version %d delta: %v", ErrCorrupt, v, err)
	}
	m, err := wire.DecodeAllowlistMessage(b)
	if err != nil || m.Type != wire.AllowlistDelta || m.Delta.To != v || m.Delta.From != info.DeltaFrom {
		return nil, 0, false, fmt.Errorf("%w: version %d delta", ErrCorrupt, v)
	}
	return b, info.DeltaFrom, true, nil
}

// Publish writes p as a new version, atomically. p.Version must be above
// the latest (ErrVersion otherwise); p.Delta, if set, must go from the
// latest to p.Version (ErrVersion). It returns ErrNoChunks for a snapshot
// without chunks, an error wrapping wire.ErrBadAllowlist for a chunk or
// delta that does not fit a message, or the file system's error; on any
// error nothing is published.
func (d *Dir) Publish(p Publication) (Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	latest, err := d.Latest()
	if err != nil {
		return Info{}, err
	}
	if p.Version <= latest {
		return Info{}, fmt.Errorf("%w: %d, latest %d", ErrVersion, p.Version, latest)
	}
	if len(p.Chunks) == 0 {
		return Info{}, ErrNoChunks
	}
	if p.Delta != nil && (p.Delta.From != latest || p.Delta.To != p.Version) {
		return Info{}, fmt.Errorf("%w: delta %d→%d, latest %d, publishing %d", ErrVersion, p.Delta.From, p.Delta.To, latest, p.Version)
	}
	h := sha256.New()
	for _, c := range p.Chunks {
		h.Write(c)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	info := Info{Version: p.Version, Chunks: len(p.Chunks), Entries: p.Entries, Schedules: p.Schedules,
		SHA256: hex.EncodeToString(sum[:]), Published: d.now().UTC()}
	files := map[string][]byte{}
	for i, c := range p.Chunks {
		m, err := wire.AppendChunkMessage(nil, p.Version, uint32(i), uint32(len(p.Chunks)), sum, c)
		if err != nil {
			return Info{}, err
		}
		files[chunkName(i)] = m
		info.Bytes += int64(len(m))
	}
	if p.Delta != nil {
		m, err := wire.AppendDeltaMessage(nil, p.Delta)
		if err != nil {
			return Info{}, err
		}
		files["delta"] = m
		info.DeltaFrom, info.DeltaBytes = p.Delta.From, int64(len(m))
		info.Upserts, info.Deletes = len(p.Delta.Upserts), len(p.Delta.Deletes)
	}
	ib, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return Info{}, fmt.Errorf("hubal: %w", err)
	}
	files["info.json"] = append(ib, '\n')
	if err := d.writeVersion(p.Version, files); err != nil {
		return Info{}, err
	}
	return info, nil
}

// crashHook is called at named points of a publish; the crash test sets
// it to kill the process there.
var crashHook = func(string) {}

func (d *Dir) writeVersion(v uint64, files map[string][]byte) (err error) {
	tmp, err := os.MkdirTemp(d.path, ".tmp-"+versionName(v)+"-")
	if err != nil {
		return fmt.Errorf("hubal: %w", err)
	}
	defer func() {
		if err != nil {
			// The publish error is the one to report; Open removes what
			// this leaves.
			_ = os.RemoveAll(tmp)
		}
	}()
	for name, b := range files {
		if err := writeSynced(filepath.Join(tmp, name), b); err != nil {
			return err
		}
		crashHook("file")
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	crashHook("rename")
	if err := os.Rename(tmp, filepath.Join(d.path, versionName(v))); err != nil {
		return fmt.Errorf("hubal: publishing version %d: %w", v, err)
	}
	crashHook("renamed")
	return syncDir(d.path)
}

func writeSynced(path string, b []byte) error {
	if err := atomicfile.WriteNew(path, b, 0o640); err != nil {
		return fmt.Errorf("hubal: writing %s: %w", path, err)
	}
	return nil
}

func syncDir(path string) error {
	if err := atomicfile.SyncDir(path); err != nil {
		return fmt.Errorf("hubal: syncing %s: %w", path, err)
	}
	return nil
}

// Plan is what to send an agent for one request.
type Plan struct {
	Kind     string   // "snapshot", "deltas", "current" (nothing to send) or "none" (no list published)
	Messages [][]byte // in sending order
	Version  uint64   // the version the agent will be at
}

// Plan kinds.
const (
	PlanSnapshot = "snapshot"
	PlanDeltas   = "deltas"
	PlanCurrent  = "current"
	PlanNone     = "none"
)

// Plan answers request r (hub-allowlist.md §6): the deltas from r.Have to
// the latest version when r asks to catch up, every one of them exists and
// together they are smaller than the snapshot; otherwise the latest
// snapshot. An agent at the latest version asking to catch up gets
// nothing. Errors are the directory's.
func (d *Dir) Plan(r wire.AllowlistRequest) (Plan, error) {
	latest, err := d.Latest()
	if err != nil {
		return Plan{}, err
	}
	if latest == 0 {
		return Plan{Kind: PlanNone}, nil
	}
	if r.Want == wire.WantCatchUp && r.Have == latest {
		return Plan{Kind: PlanCurrent, Version: latest}, nil
	}
	info, err := d.Info(latest)
	if err != nil {
		return Plan{}, err
	}
	if r.Want == wire.WantCatchUp && r.Have > 0 && r.Have < latest {
		var msgs [][]byte
		var size int64
		for v := r.Have + 1; v <= latest; v++ {
			// A missing or unreadable delta falls back to the snapshot.
			m, from, ok, err := d.Delta(v)
			if err != nil || !ok || from != v-1 {
				msgs = nil
				break
			}
			if size += int64(len(m)); size >= info.Bytes {
				msgs = nil
				break
			}
			msgs = append(msgs, m)
		}
		if msgs != nil {
			return Plan{Kind: PlanDeltas, Messages: msgs, Version: latest}, nil
		}
	}
	msgs, err := d.Snapshot(latest)
	if err != nil {
		return Plan{}, err
	}
	return Plan{Kind: PlanSnapshot, Messages: msgs, Version: latest}, nil
}

// Prune removes every version but the newest keep (keep ≥ 1), oldest first.
// Agents older than the oldest kept version then get a snapshot. It
// returns the file system's error.
func (d *Dir) Prune(keep int) error {
	if keep < 1 {
		return fmt.Errorf("%w: keep %d", ErrOptions, keep)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	vs, err := d.List()
	if err != nil {
		return err
	}
	for len(vs) > keep {
		// Renamed away first, so a crash never leaves half a version.
		gone := filepath.Join(d.path, ".tmp-pruned-"+versionName(vs[0]))
		if err := os.Rename(filepath.Join(d.path, versionName(vs[0])), gone); err != nil {
			return fmt.Errorf("hubal: %w", err)
		}
		if err := os.RemoveAll(gone); err != nil {
			return fmt.Errorf("hubal: %w", err)
		}
		vs = vs[1:]
	}
	return syncDir(d.path)
}
