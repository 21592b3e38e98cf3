// Package pgtest runs a private PostgreSQL cluster for tests: initdb in a
// directory, pg_ctl start on a free loopback port, one database per test
// (CreateDatabase), pg_ctl stop at the end.
//
// The cluster listens on 127.0.0.1 only, with trust authentication for
// the superuser "postgres", its unix socket inside the cluster directory,
// fsync on (the stores under test rely on durable commits) and
// max_connections 150, enough for several pools in one test.
//
// initdb refuses to run as root. When the caller is root (this machine,
// CI containers), every server-side command runs as the "postgres" user
// (Debian's postgresql package creates it) and the cluster directory is
// chowned to it; its parent directories must be traversable by it.
//
// pg_ctl daemonizes the server, so a test binary killed before its
// Cleanup runs (a go test -timeout panic, SIGKILL) leaves a postgres
// server and its temp directory behind. They hold only loopback ports and
// temp files; pkill by its data directory or reboot to clean up.
//
// Find locates the binaries on PATH and in /usr/lib/postgresql/*/bin;
// Start skips a test loudly when they are missing outside CI and fails it
// under CI (CI set in the environment), the policy testhw/broker has for
// Mosquitto. The package uses only the command-line tools, no driver, so
// it can be imported by any test. No package under testhw may be linked
// into kioskd.
package pgtest
