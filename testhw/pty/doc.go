// Package pty makes virtual null-modem cables for tests: a [Pair] is a Linux
// pseudo-terminal whose slave end is reachable through a stable symlink (the
// path a driver opens with drivers/serialport) and whose master end is the
// device side a simulator reads and writes.
//
// The slave is put in raw mode (no echo, no line discipline, no CR/NL
// translation) so binary protocols pass untouched. [Pair.Unplug] closes the
// master and removes the symlink, which is what a pulled USB adapter looks
// like to a driver: its reads and writes fail (EIO on Linux) and the path is
// gone. [Pair.Replug] creates a fresh pty and points the same symlink at it.
//
// No socat is needed; only github.com/creack/pty and golang.org/x/sys/unix.
package pty
