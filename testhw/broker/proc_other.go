//go:build !linux

package broker

import "syscall"

// sysProcAttr has no parent-death signal outside Linux; Close still stops
// the process.
func sysProcAttr() *syscall.SysProcAttr { return nil }
