// Package command runs the hub's signed remote commands on an agent
// (firmware-specs/hub-commands.md): door.open and door.mode arrive on the
// agent's cmd topic signed with the hub's Ed25519 command key; an Executor
// verifies each, refuses anything unsigned, wrongly signed, for another
// agent, expired, too far in the future, replayed, malformed or unknown with
// a result saying why, and runs the accepted ones exactly once.
//
// Exactly once rests on the seen file: the nonce of an accepted command is
// written and fsynced before its handler runs, so a crash after running can
// never run it again; a crash before leaves a nonce whose command did not
// run, and the hub must issue a new command (new id, new nonce) to retry.
//
// Wiring: subscribe to wire.Topics.Cmd() at QoS 1, hand each payload to
// Submit from the delivery goroutine, run Run on its own goroutine, and
// publish results to CmdResult() with uplink's PublishAsync.
package command
