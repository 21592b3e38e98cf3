// Command hubd is the hub-side reference service: it subscribes to every
// agent's event batches, status and health under -root, removes duplicates
// by (agent, sequence), stores records durably in a bbolt file (-db),
// publishes the end-to-end ack only after the commit, and answers a JSON
// API on -http (GET /api/agents, GET /api/agents/{id}/received,
// GET /api/agents/{id}/records, GET /api/stats).
//
// Records may carry personal data sealed to the hub's key
// (firmware-specs/hub-protocol.md §4.4). With -seal-key the records API
// opens it and shows it masked; only with -reveal-personal-data too does a
// request asking reveal=1 see raw values (every such request is logged,
// without the values). Without -seal-key sealed values are shown as
// stored. "hubd keygen -out DIR" writes the key pair: DIR/hub.key (0600,
// for -seal-key) and DIR/hub.pub (for the boxes).
//
//	hubd -broker ssl://broker:8883 -tls-ca ca.pem -tls-cert hub.pem -tls-key hub.key -root kioskedge/prov-a
//	hubd -broker tcp://127.0.0.1:1883 -plaintext -root kioskedge/lab -db /tmp/hub.db
//	hubd keygen -out /etc/kioskedge
//	hubd -broker … -seal-key /etc/kioskedge/hub.key
//
// SIGINT or SIGTERM stops it cleanly: what is queued is committed and
// acked, then it disconnects. The wiring lives in sync/hub/hubrun.
package main
