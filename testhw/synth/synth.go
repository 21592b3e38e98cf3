package synth

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Community is a population of residents and the gates they use.
// It is not safe for concurrent use; give each producer its own.
type Community struct {
	rng       *rand.Rand
	residents []string // keyed-hash credentials, hex
	doors     []string
	now       time.Time
	zone      *time.Location
	buf       []byte
}

// NewCommunity makes a community of residents (at least 1) and doors (at
// least 1) whose clock starts at start and advances a few hundred ms per
// record. The same seed gives the same records.
func NewCommunity(seed uint64, residents, doors int, start time.Time) *Community {
	residents, doors = max(residents, 1), max(doors, 1)
	c := &Community{
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:  start,
		zone: time.FixedZone("CST", 8*3600),
	}
	h := make([]byte, 16)
	for range residents {
		for i := range h {
			h[i] = byte(c.rng.Uint32())
		}
		c.residents = append(c.residents, hex.EncodeToString(h))
	}
	for i := range doors {
		c.doors = append(c.doors, fmt.Sprintf("gate-%d", i+1))
	}
	return c
}

var denyReasons = []string{"unknown", "expired", "outside_schedule", "wrong_door"}

// Next returns the next record: about 94% access decisions (ClassCritical),
// 4% door events (ClassEvent) and 2% health samples (ClassHealth).
func (c *Community) Next() wire.Record {
	c.now = c.now.Add(time.Duration(50+c.rng.IntN(700)) * time.Millisecond)
	door := c.doors[c.rng.IntN(len(c.doors))]
	switch p := c.rng.IntN(100); {
	case p < 2:
		return c.record(wire.KindHealthSample, wire.ClassHealth, c.healthBody())
	case p < 6:
		return c.record("door.closed", wire.ClassEvent, c.doorBody(door))
	default:
		return c.record(wire.KindAccess, wire.ClassCritical, c.accessBody(door))
	}
}

func (c *Community) record(kind string, class wire.Class, body []byte) wire.Record {
	return wire.Record{Kind: kind, Class: class, Time: c.now.In(c.zone), Body: append([]byte(nil), body...)}
}

// accessBody writes the standard access record body (hub-protocol.md §4).
func (c *Community) accessBody(door string) []byte {
	result, reason := "granted", "granted"
	if c.rng.IntN(100) < 7 {
		result, reason = "denied", denyReasons[c.rng.IntN(len(denyReasons))]
	}
	b := c.buf[:0]
	b = append(b, `{"door":"`...)
	b = append(b, door...)
	b = append(b, `","reader":"wiegand-0","cred":"`...)
	b = append(b, c.residents[c.zipf()]...)
	b = append(b, `","result":"`...)
	b = append(b, result...)
	b = append(b, `","reason":"`...)
	b = append(b, reason...)
	b = append(b, `","latency_us":`...)
	b = strconv.AppendInt(b, int64(150+c.rng.IntN(600)), 10)
	b = append(b, '}')
	c.buf = b
	return b
}

func (c *Community) doorBody(door string) []byte {
	c.buf = fmt.Appendf(c.buf[:0], `{"door":"%s","open_ms":%d}`, door, 1500+c.rng.IntN(4000))
	return c.buf
}

func (c *Community) healthBody() []byte {
	c.buf = fmt.Appendf(c.buf[:0], `{"cpu_pct":%d,"mem_mb":%d,"temp_c":%d}`, 3+c.rng.IntN(20), 9+c.rng.IntN(4), 38+c.rng.IntN(15))
	return c.buf
}

// zipf picks residents unevenly, as real gates see: a few swipe many times
// a day, most once or twice.
func (c *Community) zipf() int {
	n := len(c.residents)
	i := int(float64(n) * c.rng.Float64() * c.rng.Float64())
	return min(i, n-1)
}
