// Package devices is the agent's view of its devices (DESIGN.md §2, §4):
// a [Monitor] holds the named devices the wiring in cmd/ built, samples
// their health, turns every change into a record in the outbox, and lends
// the health to the hub's snapshot.
//
// The package knows no concrete driver. A device is anything with
// Health() devstatus.Snapshot ([Device]); the outbox is anything with
// Append ([Outbox]). cmd/ hands in the drivers and the real outbox.
//
// Transitions. A device is up when its driver reports it connected and not
// down (devstatus marks a device down after its configured number of failed
// exchanges). Each sample compares with the last and appends a ClassEvent
// record:
//
//   - "device.up": the device became up (also the first time it is seen up);
//   - "device.down": it stopped being up; a device that has never been up
//     is reported down once Options.Grace has passed since the first sample,
//     so a device still opening at start does not raise a false alarm;
//   - "device.reconnected": its reconnect counter grew while it stayed up
//     (an unplug and replug shorter than the sampling period);
//   - "device.status": its driver's detail changed ("paper near end").
//
// Their JSON body carries the device's name, kind, connected and down
// flags, error counters, reconnect count and detail. A record that could
// not be appended is retried at the next sample: the state moves on only
// after the outbox took the record.
//
// Driver events (a card inserted or removed, a reader's tamper switch, a
// printer's paper) go through [Monitor.RecordEvent] as "device.<event>"
// records. Personal data never goes into a record: fields carry facts about
// the device, never card numbers or names, and a credential.Credential
// passed as a field is refused.
//
// Time is injected (Options.Now and Options.After); tests drive the
// sampling with [Monitor.Sample] or a fake timer.
package devices
