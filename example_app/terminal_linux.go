//go:build linux

package main

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// foreground makes the demo's process the terminal's foreground process
// group when it runs in one (make demo in a shell), and returns a func that
// gives the terminal back. The terminal then sends Ctrl-C to the demo
// alone, not to make: the demo stops the site and Centrifugo and exits 0,
// and make with it, instead of make re-raising the interrupt (exit 130).
// Without a terminal (tests, CI, a pipe) it does nothing.
func foreground() (restore func()) {
	nothing := func() {}
	tty := int(os.Stdin.Fd())
	before, err := tcgetpgrp(tty)
	if err != nil || before != syscall.Getpgrp() {
		return nothing // no terminal, or not in its foreground
	}
	signal.Ignore(syscall.SIGTTOU) // a background group may not set the terminal otherwise
	if syscall.Setpgid(0, 0) != nil {
		return nothing
	}
	if tcsetpgrp(tty, syscall.Getpgrp()) != nil {
		_ = syscall.Setpgid(0, before)
		return nothing
	}
	return func() { _ = tcsetpgrp(tty, before) }
}

func tcgetpgrp(fd int) (int, error) {
	var pgrp int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp))); errno != 0 {
		return 0, errno
	}
	return int(pgrp), nil
}

func tcsetpgrp(fd, pgrp int) error {
	p := int32(pgrp)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&p))); errno != 0 {
		return errno
	}
	return nil
}
