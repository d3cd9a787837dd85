//go:build linux

package centrifugo

import "syscall"

// procAttr puts Centrifugo in its own process group, so that the demo
// decides the order of the shutdown on Ctrl-C, and has the kernel stop it
// should the site die without stopping it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
