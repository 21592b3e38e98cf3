// Package access is the agent's access decision engine: a pure function of
// a credential, a door, the allowlist and the time, with a little in-memory
// state (door modes, anti-passback, denial counts). It does no I/O of its
// own, starts no goroutines and never reads the clock; the gate's thin
// shell passes the time in, actuates and records the Decision (DESIGN.md
// §2, step 2). Decisions never wait on the network.
//
// Credentials are identified by the keyed hash of their normalised form
// (HMAC-SHA256 with the site key, privacy.KeyedHash; DESIGN.md §7); a
// Decision carries that hash, never the number.
//
// # Decision order
//
// The checks run in this order and the first that fails gives the reason.
// Each fails closed: anything the engine cannot establish denies.
//
//  1. Frame (bad_frame): a garbled read is not a credential; granting it
//     could open the door for noise. Denied even in free passage (the gate
//     has released the door anyway).
//  2. Door (unknown_door): a door not configured has no groups or mode to
//     check against.
//  3. Mode: free passage (emergency, fire) grants every well-formed read
//     without a lookup (free_passage), so escape never depends on the
//     store. Locked down is applied after the lookup, which is the only way
//     to know whether the entry is staff (locked_down).
//  4. Lookup (lookup_error, unknown): a failing store denies; so does a
//     hash it does not hold.
//  5. Validity (not_yet_valid, expired): ValidFrom <= now <= ValidTo, both
//     ends inclusive, compared as instants; a zero bound is open. An entry
//     whose bounds are inverted is never valid.
//  6. Door groups (wrong_door): the entry must share a group with the door.
//  7. Schedule (unknown_schedule, outside_schedule, holiday): schedule 0
//     means at any time; a schedule id the allowlist lacks denies. Weekly
//     windows are read in the door's time zone, Start inclusive and End
//     exclusive, End <= Start crossing midnight. A holiday closes the
//     windows that open on its date (holiday when only such windows would
//     have admitted); a window opened the evening before stays open past
//     midnight. Zones with daylight saving are supported but windows are
//     measured by wall clock, so the skipped or repeated hour follows the
//     clock.
//  8. Anti-passback (anti_passback): at an In door of the entry's
//     anti-passback group, an entry that went in and has neither come out
//     through an Out door of the group nor waited AntiPassbackTimeout is
//     refused. Only grants move the state. The memory is bounded
//     (AntiPassbackMax): when full, the oldest passage is forgotten, which
//     lets one person pass back rather than refusing everyone.
//
// Staff at a locked-down door still pass checks 5 to 8: a lockdown narrows
// access, it never widens it.
//
// # Repeated denials
//
// Denials that say the credential is wrong (bad_frame, unknown, expired,
// not_yet_valid, wrong_door) are counted per reader; the one that brings
// the count within DenialWindow to DenialThreshold (at most 5, GB 50396)
// carries the repeated_denials Alarm, and the count starts again.
package access
