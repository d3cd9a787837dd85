//go:build !linux

package instant

import "time"

// threadTime is wallTime where the CPU time of one thread is not at hand.
func threadTime(f func()) time.Duration { return wallTime(f) }
