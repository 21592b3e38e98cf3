package hubui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/hubfleet"
	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// liveAgent is the part of the agent page that SSE replaces: status,
// outbox, uplink, devices, doors, counters and the hub's coverage.
type liveAgent struct {
	Row       hubfleet.Row
	HasHealth bool
	Health    wire.Health
	Counters  []counter
	Highest   uint64
	Missing   int // holes in the hub's coverage
}

type counter struct {
	Name  string
	Value uint64
}

func live(row hubfleet.Row, st hubstore.AgentState) liveAgent {
	l := liveAgent{Row: row, Highest: st.Highest, Missing: len(st.Missing)}
	if len(st.Health) > 0 {
		if h, err := wire.DecodeHealth(st.Health); err == nil {
			l.HasHealth, l.Health = true, h
			for _, k := range slices.Sorted(maps.Keys(h.Counters)) {
				l.Counters = append(l.Counters, counter{k, h.Counters[k]})
			}
		}
	}
	return l
}

// recordLine is one record as the agent page shows it.
type recordLine struct {
	Seq     uint64
	Time    time.Time
	Kind    string
	Alarm   bool // an active alarm or a device down: highlighted
	Summary string
}

// Gate record kinds (gate-records.md).
const (
	kindDoorAlarm = "door.alarm"
	kindDoorEvent = "door.event"
)

// isAlarmKind and isAccessKind pick the agent page's two record sections
// (gate-records.md; agent/devices for device.*).
func isAlarmKind(k string) bool {
	return k == kindDoorAlarm || strings.HasPrefix(k, "device.")
}

func isAccessKind(k string) bool { return k == wire.KindAccess || k == kindDoorEvent }

// recent returns the latest alarm and access records of agent among its
// RecentWindow latest, newest first, masked.
func (u *UI) recent(agent string, highest uint64) (alarms, access []recordLine, errText string) {
	window := uint64(u.opts.RecentWindow)
	after := uint64(0)
	if highest > window {
		after = highest - window
	}
	for {
		page, err := u.opts.Records.Records(agent, hub.RecordsQuery{After: after, Limit: u.opts.RecentWindow})
		if errors.Is(err, hub.ErrUnknownAgent) {
			return nil, nil, ""
		}
		if err != nil {
			u.log.Error("dashboard records", "agent", agent, "err", err)
			return nil, nil, "records could not be read 记录读取失败"
		}
		for _, v := range page.Records {
			switch {
			case isAlarmKind(v.Kind):
				alarms = append(alarms, line(v))
			case isAccessKind(v.Kind):
				access = append(access, line(v))
			}
		}
		if !page.More || len(page.Records) == 0 {
			break
		}
		after = page.NextAfter
	}
	return newest(alarms, u.opts.RecentRecords), newest(access, u.opts.RecentRecords), ""
}

// newest returns the last n of ls, reversed.
func newest(ls []recordLine, n int) []recordLine {
	ls = ls[max(0, len(ls)-n):]
	slices.Reverse(ls)
	return ls
}

func line(v hub.RecordView) recordLine {
	l := recordLine{Seq: v.Seq, Time: v.Time, Kind: v.Kind}
	if v.Error != "" {
		l.Summary = v.Error
		return l
	}
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(v.Body))
	dec.UseNumber()
	if len(v.Body) == 0 || dec.Decode(&body) != nil {
		return l
	}
	var parts []string
	flatten(body, "", v.Sealed, &parts)
	l.Summary = strings.Join(parts, " ")
	switch v.Kind {
	case kindDoorAlarm:
		l.Alarm = body["active"] == true
	case "device.down":
		l.Alarm = true
	}
	return l
}

// flatten appends "key=value" for each leaf of x, sorted by key, masked
// (see safeValue).
func flatten(x any, path string, sealedFields map[string]string, out *[]string) {
	switch x := x.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			flatten(x[k], p, sealedFields, out)
		}
	case []any:
		for i, v := range x {
			flatten(v, fmt.Sprintf("%s[%d]", path, i), sealedFields, out)
		}
	default:
		*out = append(*out, path+"="+safeValue(path, x, sealedFields))
	}
}

// personalWords are field-name parts that say a plain field may hold
// personal data; such a field's value is never shown.
// ("name" alone is not one: devices and doors have names.)
var personalWords = []string{"number", "card", "phone", "ssn", "idno", "id_no", "address", "birth",
	"holder", "person", "full_name", "real_name", "surname"}

// safeValue is what the page shows for the leaf at path.
func safeValue(path string, x any, sealedFields map[string]string) string {
	if st, ok := sealedFields[path]; ok {
		if st == hub.SealedMasked {
			return fmt.Sprint(x) // opened and masked by the hub
		}
		return "(sealed 已加密)"
	}
	field := path
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	field = strings.ToLower(field)
	s := fmt.Sprint(x)
	if strings.HasSuffix(field, hub.SealedSuffix) {
		return "(sealed 已加密)" // not opened by the hub: never shown as stored
	}
	if field == "cred" || strings.Contains(field, "hash") {
		if len(s) > 8 {
			return s[:8] + "…"
		}
		return s
	}
	for _, w := range personalWords {
		if strings.Contains(field, w) {
			return "********"
		}
	}
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
