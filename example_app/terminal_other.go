//go:build !linux

package main

// foreground does nothing outside Linux: there Ctrl-C reaches make too,
// which then ends with the interrupt's status.
func foreground() (restore func()) { return func() {} }
