package instant

import "time"

// SetClock gives i's retries and probes a fake clock: now for the marks of
// nodes down, after for the backoff, Retry-After and probe waits.
func SetClock(i *Instant, now func() time.Time, after func(time.Duration) <-chan time.Time) {
	i.clock = clock{now, after}
}
