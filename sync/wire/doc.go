// Package wire holds the hub protocol shared by the agent and the hub: the
// MQTT topic tree, the record encoding, the event-batch envelope, and the
// JSON shapes of status (birth/death), health, end-to-end acks, commands and
// command results.
//
// firmware-specs/hub-protocol.md is the source of truth for every byte here;
// comments point to its sections instead of restating them.
//
// Concepts:
//   - A Record is one self-describing fact from an agent: kind, class, time,
//     body, plus the agent id and the per-agent sequence number it was given
//     by the outbox.
//   - A Batch carries the records of one contiguous sequence range
//     [First, Last] from one agent. Every sequence in the range is either
//     carried in the batch or was dropped by the agent and declared in a gap
//     record, so the hub can mark the whole range as covered.
//   - The hub answers with an Ack: "stored through sequence N".
//
// This package imports no MQTT or storage library; it is pure encoding.
package wire
