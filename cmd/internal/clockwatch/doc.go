// Package clockwatch keeps an agent's clock honest against the hub's
// (DESIGN.md §9: clocks within 5 s, synchronised daily; the agent measures
// its offset and raises an alarm beyond a configurable bound).
//
// A Watch asks the hub for its time over the agent's time/req topic
// (wire.ClockRequest, the same exchange the commissioning self-test
// uses), keeps the best of a few exchanges (the one with the smallest
// network round trip, so the smallest error), and repeats on an interval,
// sooner after a failure. The latest measurement goes into every health
// snapshot (wire.ClockHealth, hub-protocol.md §6), so the hub's dashboard
// shows each box's offset; crossing the bound either way is reported once
// through Options.OnSkew, which the node turns into a clock.skew record.
//
// The agent never sets the system clock: that is NTP's job (timedatectl);
// the alarm tells a technician it is not doing it.
package clockwatch
