package instant

import "time"

// SetClock gives i a fake clock: now for the marks of nodes down and the
// times the routes, the proxies and the token methods sign at (not
// Check's), after for the backoff, Retry-After and probe waits.
func SetClock(i *Instant, now func() time.Time, after func(time.Duration) <-chan time.Time) {
	i.clock = clock{now, after}
}
