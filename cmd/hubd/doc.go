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
// Gates' allowlists: "hubd allowlist push" reads a CSV of credentials
// (hashed here with the site key; raw numbers never leave the hub), writes
// the next version of the list to a directory and publishes it to the
// named agents (-agent) or groups (-group); "hubd allowlist show" lists the
// versions. A hub started with -allowlist-dir DIR answers the agents'
// catch-up requests from that directory (firmware-specs/hub-allowlist.md).
//
// Signed remote commands: "hubd cmd keygen -out DIR" writes the command
// key pair (cmd.key 0600, stays on the hub; cmd.pub for the boxes' [gate]
// command_key_file); "hubd cmd door-open -agent A -door D -key cmd.key" and
// "hubd cmd door-mode ... -mode M" sign a command, publish it and wait for
// the agent's result (firmware-specs/hub-commands.md).
//
//	hubd allowlist push -csv residents.csv -site-key site.key -dir /var/lib/hubd/lists -broker … -group all
//	hubd -broker … -allowlist-dir /var/lib/hubd/lists
//	hubd cmd door-open -broker … -root kioskedge/prov-a -agent gate-17 -door main -key cmd.key
//
// Box enrolment (firmware-specs/enrolment.md): "hubd ca init -dir D"
// makes the box CA (D/ca.key 0600, D/ca.pem for the broker's client CA);
// "hubd claim create -dir D -count N -expires 72h" prints one-time claim
// tokens (only their hashes are kept; "hubd claim list" shows their state);
// a hub started with -enrol-ca D signs boxes' certificate requests sent
// with a token; "hubd ca sign -dir D -csr box.csr -out box.pem" signs one
// brought offline.
//
// Records carried on a USB stick (firmware-specs/outbox-export.md):
// "hubd import -db hub.db -ca D FILE.keo..." verifies each file written by
// kioskctl outbox export (checksum, sequences, the box's signature, its
// certificate chaining to the box CA, CN = agent) and stores the records
// through the same dedup as MQTT; hubd must be stopped (the store's lock).
//
// Lifecycle and metrics: the hub keeps its own retained status on
// <root>/v1/$hub/status (online at connect, offline by its Will or at a
// clean stop; hub-protocol.md §12). It notices gaps (a missing range older
// than -gap-age), stale statuses and boots without a death
// (GET /api/lifecycle); with -cmd-key cmd.key it asks such an agent for a
// rebirth (signed agent.rebirth, at most once per -rebirth-interval);
// "hubd cmd rebirth -agent A -key cmd.key" asks by hand. GET /metrics on
// -http serves Prometheus text (metrics.go lists the families).
//
// SIGINT or SIGTERM stops it cleanly: what is queued is committed and
// acked, then it disconnects. The wiring lives in sync/hub/hubrun.
package main
