// Package hubrun wires a complete hub process: the hubstore file, an
// uplink.Session to the broker, the hub ingest and its HTTP API. cmd/hubd
// is a flag parser around it, and cmd/kioskdemo runs a hub in-process with
// it.
//
// It is the only hub-side package that imports sync/uplink (and so,
// indirectly, the MQTT client); sync/hub itself sees only its small
// Transport interface, which Adapt implements over a *uplink.Session.
package hubrun
