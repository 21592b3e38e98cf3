// Package gate is the door state machine of one gate: it sits between the
// drivers (readers, door inputs, relays; wired in cmd/) and the access
// engine (agent/access). A presented credential is decided by the engine;
// a grant releases the door at once; door inputs (contact, exit button,
// fire alarm, tamper) move each door through the table below; every step
// is written to the outbox as a record (firmware-specs/gate-records.md,
// and hub-protocol.md §4.3 for access.decision).
//
// # Per-door state machine
//
// State: released (relay commanded open), open (contact active), the
// pulse deadline, the held-open deadline, fire, mode (agent/access).
//
//	event                        condition                     action                                      records
//	---------------------------  ----------------------------  ------------------------------------------  ------------------------------
//	grant (Present)              no fire                       Release; pulse ends at now+UnlockPulse      access.decision, released(grant)*
//	grant                        fire                          none (already released)                     access.decision
//	denial                       -                             none                                        access.decision [+ repeated_denials alarm]
//	exit pressed                 no fire, exit releases        Release; pulse as for a grant               exit, released(exit)*
//	RemoteOpen                   no fire                       Release; pulse as for a grant               remote_open, released(remote)*
//	pulse deadline passes        released, no fire             Secure                                      secured(pulse_end)
//	contact opens                released                      relock-on-close armed; held timer starts    opened
//	contact opens                fire or free passage mode     none                                        opened
//	contact opens                otherwise                     forced_open alarm                           opened, forced_open(active)
//	door open HeldOpen           legit open, no fire, not FP   held_open alarm                             held_open(active)
//	contact closes               opened during the release     Secure (relock on close)                    closed, [alarm clears], secured(closed)
//	contact closes               otherwise                     clear held/forced alarms                    closed, [alarm clears]
//	fire input active (first)    -                             every door: Release, engine FreePassage     released(fire) per door, fire(active)
//	fire input clears (last)     -                             every door: engine mode restored, Secure    fire(inactive), secured(fire_clear) per door
//	tamper active / clear        level changed                 none                                        tamper(active / inactive)
//	SetMode                      no fire                       engine mode set                             mode
//	SetMode                      fire                          kept, applied when the fire clears          mode
//	Close, Run's end             -                             Halt every door; no further actuation       halted per door
//
// (* released is recorded only when the door was secured: a grant during a
// pulse extends it to a full UnlockPulse from the new grant.) "Legit open"
// is one while the door is released; "FP" is the free passage mode set by
// an operator, in which an opening is neither forced nor held. While a fire
// alarm is active nothing pulses or relocks, and the engine grants every
// readable credential (bad frames are still denied). Several fire inputs
// (one per door, or "" for the gate) keep every door released while any is
// active. Repeated reports of the same input level change nothing, so the
// wiring can report every input's level at start: a fire input active at
// start releases every door in that first Input call, before Run, and a
// contact reported open at start (a door propped open across a restart)
// raises forced_open.
//
// # Actuation first
//
// Present, Input and RemoteOpen drive the relay before anything else and
// hold only that door's lock while they do (the lock order is the gate's
// input lock, then a door's, then the record queue's). They never wait
// for the disk: records go into a bounded in-memory queue as unencoded
// entries, and Run's writer encodes and appends them to the outbox in
// order. A relay error, or a driver panic (which also Halts the relay), is
// recorded as a relay_fault alarm; the pulse's end still secures the door.
// A new Gate does not touch the relays: they are expected to start
// secured.
//
// # Records are not lost, and never silently
//
// When Append fails the writer retries the same record with back-off on
// the clock (RetryMin doubling to RetryMax) and the queue waits behind it,
// so order is kept and a record may at worst be written twice. While it
// waits the queue fills; when it is full, new records are dropped — the
// doors keep working, Present and Input never block on the disk — and as
// soon as there is room a gate.dropped record (count, time span) stands
// where they were, and Stats counts them. A record the outbox refuses as
// malformed (wire.ErrBadRecord) cannot succeed on retry: it is logged,
// counted and skipped. On Close or when Run's context ends the doors are
// halted, then what is queued is written, one attempt each, for at most
// DrainTimeout.
//
// If the writer panics (an outbox bug), Run recovers, halts every door and
// returns an error wrapping ErrPanic: the gate no longer actuates, and the
// caller should treat the error as fatal (exit, let systemd restart the
// agent, which then reads the input levels again).
package gate
