// Package hubalert turns what the hub ingests into alerts for the people
// who fix things (firmware-specs/hub-alerts.md): rules with thresholds
// from a TOML rules file, one state per key (rule/agent/subject) that
// fires once and resolves once, delivery to signed webhooks and to an
// MQTT topic, and the alert history for the dashboard.
//
// The [Engine] is the pure core: statuses, health snapshots, records and
// clock ticks in, transitions out; it is table-tested with plain times.
// The [Service] is the shell: the hub's OnCommit hook hands it each
// committed write through [Service.Offer], which never waits (a full
// queue drops and counts), so ingest never waits for alerts; one
// goroutine evaluates, saves the state (a [StateStore]: by default
// [FileState], an atomic rewrite of Rules.StateFile; sync/hubpg keeps it
// in PostgreSQL for hub instances that share it) and hands
// transitions to each webhook's own queue and goroutine (retries with
// capped exponential back-off and jitter; a dead receiver delays only
// itself) and to the MQTT publisher's queue.
//
// Offline detection rests on the agent's MQTT Will: the broker publishes
// the retained death after keep-alive × 1.5 without traffic, the hub
// commits it, and with offline.after = 0 the alert fires as soon as the
// death is evaluated.
//
// Several hub instances share one state by running the Service on the
// one that leads and calling [Service.Reload] on the others (to show the
// leader's alerts) and on a new leader before its Run.
package hubalert
