package instant

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// threadTime runs f on one locked OS thread and returns the CPU time that
// thread spent meanwhile (CLOCK_THREAD_CPUTIME_ID): a busy machine that
// takes the CPU away does not count, as it would in wall time.
func threadTime(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, ok := threadCPU()
	if !ok {
		return wallTime(f)
	}
	f()
	after, ok := threadCPU()
	if !ok {
		return wallTime(f)
	}
	return after - before
}

// threadCPU is the CPU time of the calling thread so far.
func threadCPU() (time.Duration, bool) {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
