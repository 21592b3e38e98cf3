package broker

import "syscall"

// sysProcAttr makes the kernel kill mosquitto if this process dies without
// stopping it (a test binary killed on timeout), so no broker is left
// behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
