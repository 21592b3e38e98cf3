// Package localapi is the kiosk UI's local device service (DESIGN.md §7,
// issue 5): HTTP + WebSocket on loopback, a bearer token, JSON everywhere.
// The OpenAPI 3.1 document in openapi.json (served at /v1/openapi.json) is
// the contract; a test keeps it and the routes equal.
//
// The package declares the small interfaces it consumes (Outbox,
// Protector, CardReader, Printer, HealthSource); cmd/internal/kiosk adapts
// the concrete drivers to them. It imports no driver but credential.
//
// # Transactions and Idempotency-Key
//
// POST /v1/transactions answers 201 only after Outbox.Append returned, so
// a 201 means the record is fsynced in the outbox and will reach the hub.
// The record (kind "kiosk.transaction", critical class) never holds a raw
// credential number: only its keyed hash (Protector.Hash) and, when a hub
// key is configured, the number sealed to it (Protector.Seal).
//
// With an Idempotency-Key header the transaction id is derived from the key
// (HMAC-SHA256 under Options.IDSecret, which cmd makes stable across
// restarts), so every record stored for one key carries the same id. A
// retry with a key seen in the last IdempotencyTTL returns exactly the
// first response (201, the first seq and id, "Idempotent-Replayed: true")
// and stores nothing more; a concurrent request with the same key gets
// the first one's answer. The same key with a different body gets 422
// "idempotency_key_reused" and stores nothing. A failed attempt (400,
// 413, 503) is not remembered: retrying it may succeed.
//
// When Options.Outbox is an OnceAppender (sync/outbox is; cmd wires it),
// its durable index alone holds this: the outbox stores the record only if
// the transaction id is new, in the record's own transaction (its
// committer serialises concurrent requests with one key), and keeps the
// id's 16 bytes with the seq and a version byte and 16 bytes of the
// request body's SHA-256 for IdempotencyTTL, at most 100,000 ids (the
// outbox's defaults); a replay is rebuilt from the first seq and id. That
// makes it hold across restarts and crashes: if
// the agent dies after the record was committed but before the client saw
// the 201, or the client retries after a restart, the retry gets the first
// seq and id and no second record is stored. The raw key never reaches the
// disk, only the id derived from it.
//
// What is not guaranteed: a key older than IdempotencyTTL, or pushed out
// by 100,000 newer ones, is forgotten and a retry stores a new record
// (with the same id). If the outbox file is found damaged and replaced
// (sync/outbox's quarantine and salvage, which raises an outbox alarm
// record), its index goes with it. With an Outbox that is not an
// OnceAppender the guarantee holds only within one process. In those
// cases the duplicates are identical in id, so a consumer deduplicating
// transactions by id still sees one. Without an OnceAppender an in-memory
// cache takes the index's place: the last IdempotencyEntries keys and their
// responses, and the attempts in flight (a concurrent request with the
// same key waits for the first).
//
// # The transaction fast path
//
// Every connection is read first by the server itself (fastpath.go): while
// its requests are plain, authorised POST /v1/transactions with a
// Content-Length body, it answers them without net/http, through the same
// code and with the same statuses, bodies and headers as the net/http
// handler; the first request of any other kind is left unread and the
// connection, buffered bytes included, is handed to net/http for good. A
// test sends the same requests to a server with and without the fast path
// and compares the answers; a fuzz test checks that every head the fast
// path accepts reads the same in net/http.
//
// # Cards
//
// POST /v1/cards/read polls the named reader until a card is read or
// timeout_ms passes. Statuses: 200 with the decoded fields; 400
// "unknown_reader"; 404 "no_card" (no card presented within timeout_ms);
// 422 "card_unreadable" (removed during the read, not a valid card); 503
// "reader_offline"; 504 "reader_timeout" (the reader itself did not
// answer); 502 "reader_error" otherwise. The response carries personal data
// for the UI's own use; it is never logged.
//
// # Events
//
// GET /v1/events is a WebSocket of JSON Event messages: card.inserted,
// card.removed, card.read, code.scanned, device.up, device.down,
// printer.status. code.scanned carries the scanned payload in "data"
// because the UI needs it (an appointment QR); it is sent only to
// authenticated local clients and is never logged nor recorded. Browsers
// cannot set an Authorization header on a WebSocket, so the token may also
// be offered as the subprotocol "bearer.<token>" next to "kioskedge.v1".
// A client that cannot keep up (EventBuffer messages behind) is
// disconnected rather than slowing the devices down.
package localapi
