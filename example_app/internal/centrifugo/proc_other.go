//go:build !linux

package main

import "syscall"

// childProcAttr leaves the process attributes at their defaults outside
// Linux: Centrifugo then gets Ctrl-C with the demo and stops by itself too.
func childProcAttr() *syscall.SysProcAttr { return nil }
