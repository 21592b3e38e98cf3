// Command hubd is the hub-side reference service: it subscribes to every
// agent's event batches, status and health under -root, removes duplicates
// by (agent, sequence), stores records durably in a bbolt file (-db),
// publishes the end-to-end ack only after the commit, and answers a JSON
// API on -http (GET /api/agents, GET /api/agents/{id}/received,
// GET /api/stats).
//
//	hubd -broker ssl://broker:8883 -tls-ca ca.pem -tls-cert hub.pem -tls-key hub.key -root kioskedge/prov-a
//	hubd -broker tcp://127.0.0.1:1883 -plaintext -root kioskedge/lab -db /tmp/hub.db
//
// SIGINT or SIGTERM stops it cleanly: what is queued is committed and
// acked, then it disconnects. The wiring lives in sync/hub/hubrun.
package main
