// Package hubfleet is the hub's fleet view model: one summary row per
// agent, derived from what the hub's store holds (the agent's latest
// birth, status and health, and its record coverage), kept in memory for
// the dashboard (sync/hubui) and updated whenever the hub commits a status
// or health of that agent.
//
// A [Fleet] is built from the store at start ([New] reads every agent
// once) and then follows the hub through [Fleet.Update], which the hub
// calls through hub.Options.OnAgentChange. [Fleet.List] filters (region
// prefix, online or offline, faulted, text on id and site), sorts and
// pages the rows on the server, so a page of a fleet of ten thousand
// agents costs one pass over the rows and one sort. [Fleet.Subscribe]
// tells a live view which rows changed, coalescing bursts so a slow
// reader never blocks ingest nor grows without bound.
//
// Rows carry no personal data: the status and health messages do not hold
// any (hub-protocol.md §3, §6).
package hubfleet
