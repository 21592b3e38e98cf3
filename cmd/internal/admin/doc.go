// Package admin is kioskd's local admin endpoint ([admin] in the config):
// loopback HTTP for the box's own tools, never for the kiosk UI.
//
//	GET  /metrics     Prometheus text (cmd/internal/promtext); no auth, so
//	                  a local Prometheus or node exporter can scrape it
//	GET  /v1/status   StatusResponse: the health snapshot the hub gets
//	                  (wire.Health) and the time of the last hub ack
//	POST /v1/records  {"kind":"commissioning.…","body":{…}}: appended
//	                  durably (class critical) → 201 {"seq":N}
//
// /v1/ needs "Authorization: Bearer <token>", the token kept in
// <data_dir>/admin.token (mode 0600, created by kioskd at start; TokenPath):
// whoever can read the agent's data directory may ask it. kioskd writes the
// address it actually listens on to <data_dir>/admin.addr (AddrPath), so
// kioskctl finds a daemon listening on port 0 (tests) too.
//
// The server owns no data: Options give it functions that gather metrics,
// build the status and append a record, so it is tested without a node.
package admin
