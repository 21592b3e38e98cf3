// Package hubca is the hub's small certificate authority for box
// certificates and its enrolment responder (firmware-specs/enrolment.md).
//
// A CA lives in one directory: ca.key (the CA's ECDSA P-256 key, mode
// 0600, never leaves the hub), ca.pem (its certificate, given to the
// broker as the client CA) and state.json (the SHA-256 of every claim
// token with its expiry and use, and every certificate issued). state.json
// is rewritten atomically (temporary file, fsync, rename, fsync of the
// directory) under an exclusive lock on state.lock, so a one-time token
// stays used across restarts and two requests — from two goroutines or two
// processes on the hub host — never both redeem one token.
//
// Boxes enrol either online, with a one-time claim token: a Responder
// answers EnrolRequests on <root>/v1/$enrol/+/req (CA.Enrol); or offline:
// the technician brings the box's CSR and the operator signs it
// (CA.SignOffline, "hubd ca sign"). Certificates carry the agent id as
// their common name and the client-auth usage only; the CA decides
// everything in them, nothing is copied from the CSR but its public key and
// common name.
package hubca
