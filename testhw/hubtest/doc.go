// Package hubtest runs a real hub (sync/hub/hubrun) in the test process, so
// end-to-end tests of agents and of kioskd need not wire one by hand.
//
// Start runs a hubrun.Server against a broker URL on a temporary (or given)
// bbolt file until the test ends; Stop and Restart bring it down and back
// on the same file, as a hub process that is stopped or restarted. The
// helpers read what the hub holds: the records it stored for an agent
// (Records), its received summary (Received), the agent's last status and
// health decoded (View), and a bounded wait until it holds every sequence
// through a given one (WaitHolds).
//
// Like every package under testhw it must never be linked into kioskd.
package hubtest
