//go:build linux

package main

import "syscall"

// childProcAttr puts Centrifugo in its own process group, so that the demo
// decides the order of the shutdown on Ctrl-C, and has the kernel stop it
// should the demo die without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
