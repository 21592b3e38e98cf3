// Package sdnotify speaks systemd's notify protocol (sd_notify(3)) for a
// service started with Type=notify: one datagram per message to the
// AF_UNIX socket named by $NOTIFY_SOCKET ("@name" is an abstract socket),
// each holding newline-separated VAR=value assignments.
//
// The messages kioskd sends: READY=1 once it serves, STATUS=<text> for
// `systemctl status`, WATCHDOG=1 to prove it is alive (systemd restarts a
// service whose pings stop for WatchdogSec; $WATCHDOG_USEC carries that
// period and the service should ping at half of it), RELOADING=1 while it
// rereads its config (followed by READY=1), and STOPPING=1 when it begins
// to shut down.
//
// Outside systemd ($NOTIFY_SOCKET unset) a Notifier does nothing and
// reports Enabled false, so callers need no special case. The package has
// no dependency: the protocol is a few lines of net.UnixConn.
package sdnotify
