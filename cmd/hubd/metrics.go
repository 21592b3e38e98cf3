package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
)

// RegionDigits is how many leading digits of a birth's region code (GB/T
// 2260) label kioskedge_hub_agents_online: 4, the city.
const RegionDigits = 4

// metricsSources are what /metrics reads besides the hub.
type metricsSources struct {
	// AlertsFiring, when set, returns the number of firing alerts per rule;
	// nil counts the hub's own alert service (hubd -alerts) by rule, and
	// without one writes the family without samples.
	AlertsFiring func() map[string]int
}

// metricsHandler serves the hub's Prometheus metrics (README "Metrics"):
//
//	kioskedge_hub_agents{region,state}        gauge: agents by city (first RegionDigits digits of the birth's region; "unknown" without one) and online/offline
//	kioskedge_hub_agents_online{region}        gauge: online agents by city
//	kioskedge_hub_alerts_firing{rule}          gauge
//	kioskedge_hub_records_total                counter: records stored (rate() is the ingest rate)
//	kioskedge_hub_batches_total                counter
//	kioskedge_hub_duplicates_dropped_total     counter
//	kioskedge_hub_declared_dropped_total       counter: records agents declared dropped (gap records)
//	kioskedge_hub_bad_messages_total{reason}   counter
//	kioskedge_hub_acks_total{result}           counter: published, confirmed, error
//	kioskedge_hub_ack_latency_seconds_sum      counter: batch arrival to ack published, summed over acks
//	kioskedge_hub_ack_latency_seconds_count    counter
//	kioskedge_hub_commits_total{result}        counter: ok, error
//	kioskedge_hub_lifecycle_events_total{event} counter: gap, stale_birth, boot_without_death
//	kioskedge_hub_rebirths_sent_total          counter
//	kioskedge_hub_mqtt_connected               gauge 0/1
func metricsHandler(s *hubrun.Server, src metricsSources) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var buf bytes.Buffer
		writeMetrics(&buf, s, src)
		w.Header().Set("Content-Type", promtext.ContentType)
		// The scraper may have gone away; there is nobody to tell.
		_, _ = w.Write(buf.Bytes())
	})
}

func writeMetrics(buf *bytes.Buffer, s *hubrun.Server, src metricsSources) {
	h := s.Hub()
	st := h.Stats()
	type key struct{ region, state string }
	agents := map[key]int{}
	online := map[string]int{}
	for _, a := range h.Agents() {
		r := regionOf(a.LastBirth)
		state := "offline"
		if a.Online {
			state = "online"
			online[r]++
		} else if _, ok := online[r]; !ok {
			online[r] = 0
		}
		agents[key{r, state}]++
	}
	w := promtext.NewWriter(buf)
	w.Family("kioskedge_hub_agents", promtext.Gauge, "Agents the hub knows, by city region code and state.")
	keys := slices.SortedFunc(maps.Keys(agents), func(a, b key) int {
		return strings.Compare(a.region+"/"+a.state, b.region+"/"+b.state)
	})
	for _, k := range keys {
		w.Sample(float64(agents[k]), promtext.L("region", k.region, "state", k.state)...)
	}
	w.Family("kioskedge_hub_agents_online", promtext.Gauge, "Agents whose latest status is online, by city region code.")
	for _, r := range slices.Sorted(maps.Keys(online)) {
		w.Sample(float64(online[r]), promtext.L("region", r)...)
	}
	w.Family("kioskedge_hub_alerts_firing", promtext.Gauge, "Alerts firing, by rule.")
	alertsFiring := src.AlertsFiring
	if alertsFiring == nil && s.Alerts() != nil {
		alertsFiring = func() map[string]int {
			m := map[string]int{}
			for _, a := range s.Alerts().Firing() {
				m[a.Rule]++
			}
			return m
		}
	}
	if alertsFiring != nil {
		firing := alertsFiring()
		for _, rule := range slices.Sorted(maps.Keys(firing)) {
			w.Sample(float64(firing[rule]), promtext.L("rule", rule)...)
		}
	}
	counter := func(name, help string, v float64) {
		w.Family(name, promtext.Counter, help)
		w.Sample(v)
	}
	counter("kioskedge_hub_records_total", "Records stored; its rate is the ingest rate.", float64(st.Records))
	counter("kioskedge_hub_batches_total", "Event batches committed, duplicates included.", float64(st.Batches))
	counter("kioskedge_hub_duplicates_dropped_total", "Records dropped as already stored.", float64(st.Duplicates))
	counter("kioskedge_hub_declared_dropped_total", "Records agents declared dropped (gap records).", float64(st.Declared))
	w.Family("kioskedge_hub_bad_messages_total", promtext.Counter, "Bad or dropped messages, by reason.")
	for _, r := range slices.Sorted(maps.Keys(st.Bad)) {
		w.Sample(float64(st.Bad[r]), promtext.L("reason", r)...)
	}
	w.Family("kioskedge_hub_acks_total", promtext.Counter, "End-to-end acks: published, confirmed by the broker, failed.")
	w.Sample(float64(st.AcksPublished), promtext.L("result", "published")...)
	w.Sample(float64(st.AcksConfirmed), promtext.L("result", "confirmed")...)
	w.Sample(float64(st.AckErrors), promtext.L("result", "error")...)
	counter("kioskedge_hub_ack_latency_seconds_sum", "Seconds from a batch's arrival to its ack being published, summed over acks.", st.AckLatencySum)
	counter("kioskedge_hub_ack_latency_seconds_count", "Acks timed in kioskedge_hub_ack_latency_seconds_sum.", float64(st.AckLatencyCount))
	w.Family("kioskedge_hub_commits_total", promtext.Counter, "Store transactions, by result.")
	w.Sample(float64(st.Commits), promtext.L("result", "ok")...)
	w.Sample(float64(st.CommitErrors), promtext.L("result", "error")...)
	w.Family("kioskedge_hub_lifecycle_events_total", promtext.Counter, "Lifecycle events the hub detected, by event.")
	w.Sample(float64(st.Gaps), promtext.L("event", "gap")...)
	w.Sample(float64(st.StaleBirths), promtext.L("event", "stale_birth")...)
	w.Sample(float64(st.BootsWithoutDeath), promtext.L("event", "boot_without_death")...)
	counter("kioskedge_hub_rebirths_sent_total", "Signed agent.rebirth commands the hub sent.", float64(st.RebirthsSent))
	w.Family("kioskedge_hub_mqtt_connected", promtext.Gauge, "1 while the hub's MQTT session is connected.")
	conn := 0.0
	if s.Session().Connected() {
		conn = 1
	}
	w.Sample(conn)
	// Errors are only bad names, which the tests catch; a bytes.Buffer
	// does not fail.
	_ = w.Flush()
}

// regionOf returns the first RegionDigits digits of a birth's region, or
// "unknown".
func regionOf(birth json.RawMessage) string {
	var b struct {
		Region string `json:"region"`
	}
	if len(birth) == 0 || json.Unmarshal(birth, &b) != nil || len(b.Region) < RegionDigits {
		return "unknown"
	}
	r := b.Region[:RegionDigits]
	for i := 0; i < len(r); i++ {
		if r[i] < '0' || r[i] > '9' {
			return "unknown"
		}
	}
	return r
}
