//go:build !linux

package centrifugo

import "syscall"

// procAttr leaves the process attributes at their defaults outside
// Linux: Centrifugo then gets Ctrl-C with the site and stops by itself too.
func procAttr() *syscall.SysProcAttr { return nil }
