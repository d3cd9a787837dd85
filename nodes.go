package instant

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// Backoff between rounds of attempts over the nodes: full jitter over an
// exponential step, capped.
const (
	retryBase = 50 * time.Millisecond
	retryCap  = 1 * time.Second
)

// Stats are counters of the calls to Centrifugo, for an app to export.
// Each is a total since New.
type Stats struct {
	// Published counts events Centrifugo published in full, every
	// publication of theirs (Broadcast, BroadcastBatch: the events of a
	// partly failed batch that went out count too).
	Published uint64 `json:"published"`
	// Retried counts attempts made again after a transport failure or a
	// 408, 429 or 5xx answer, on the same node after a backoff.
	Retried uint64 `json:"retried"`
	// FailedOver counts moves to the next node of APIURLs after one did not
	// answer.
	FailedOver uint64 `json:"failed_over"`
	// Failed counts calls that returned an error in the end.
	Failed uint64 `json:"failed"`
	// OutboxWritten counts events written to the outbox (BroadcastTx).
	OutboxWritten uint64 `json:"outbox_written"`
	// CachedUsers and CachedUserBytes are what the decoded-user cache holds
	// now: entries, and the bytes counted for them (bounded at 4 MiB).
	CachedUsers     int `json:"cached_users"`
	CachedUserBytes int `json:"cached_user_bytes"`
}

type counters struct {
	published, retried, failedOver, failed, outboxWritten atomic.Uint64
}

// Stats returns the counters so far. Safe for concurrent use.
func (i *Instant) Stats() Stats {
	if i == nil {
		return Stats{}
	}
	entries, bytes := i.users.size()
	return Stats{
		CachedUsers:     entries,
		CachedUserBytes: bytes,
		Published:       i.stats.published.Load(),
		Retried:         i.stats.retried.Load(),
		FailedOver:      i.stats.failedOver.Load(),
		Failed:          i.stats.failed.Load(),
		OutboxWritten:   i.stats.outboxWritten.Load(),
	}
}

// call runs op against Centrifugo within ctx and PublishTimeout: against
// APIURL, then each of APIURLs in order while a node does not answer (a
// transport failure, a reply cut short, a 5xx, a 408 or a 429, or, while
// another node is left, no answer within its share of PublishTimeout:
// 1/nodes), and then again from the first after a backoff, until it
// succeeds, is refused (another 4xx, an API error: never retried), or the
// time is up. The backoff lasts at least as long as the longest
// Retry-After of the round's 429 and 503 answers; when that is past what
// is left of the time, call gives up at once. The last error is returned.
func (i *Instant) call(ctx context.Context, op func(context.Context, apiClient) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
	defer cancel()
	note := new(retryNote)
	ctx = context.WithValue(ctx, retryNoteKey{}, note)
	var err error
	for round := 0; ; round++ {
		note.after = 0
		for k, node := range i.nodes {
			if k > 0 {
				i.stats.failedOver.Add(1)
			} else if round > 0 {
				i.stats.retried.Add(1)
			}
			actx, acancel := ctx, context.CancelFunc(func() {})
			if k < len(i.nodes)-1 {
				// Another node is left to fail over to: this one gets its
				// share. The last node of a round gets what time is left.
				actx, acancel = context.WithTimeout(ctx, i.attemptTimeout())
			}
			err = op(actx, node)
			slow := actx.Err() != nil && ctx.Err() == nil // this attempt's time ran out, not the call's
			acancel()
			if err == nil || !(slow || retryable(err)) {
				if err != nil {
					i.stats.failed.Add(1)
				}
				return err
			}
			if ctx.Err() != nil {
				i.stats.failed.Add(1)
				return err
			}
		}
		wait := rand.N(min(retryCap, retryBase<<min(round, 10))) + 1
		if note.after > 0 {
			if deadline, _ := ctx.Deadline(); time.Until(deadline) < note.after {
				// Asked to come back after the time is up: no use waiting.
				i.stats.failed.Add(1)
				return err
			}
			wait = max(wait, note.after)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			i.stats.failed.Add(1)
			return err
		case <-t.C:
		}
	}
}

// attemptTimeout is what one attempt may take against a node that is not
// the last of APIURL and APIURLs: an equal share of PublishTimeout, so that
// a node that takes the request and never answers leaves time for the
// next. With a single node, there is no share: it has all of the time.
func (i *Instant) attemptTimeout() time.Duration {
	return i.cfg.PublishTimeout / time.Duration(len(i.nodes))
}

// retryable reports whether err means the node did not answer (a
// transport failure, a reply cut short, or a 5xx) or asked to be asked
// again (408 Request Timeout, 429 Too Many Requests), not that it refused.
// Sending a publish again is safe: it carries its idempotency keys.
func retryable(err error) bool {
	var pe *PublishError
	if !errors.As(err, &pe) {
		return false // refused before sending: a bad event
	}
	if pe.StatusCode != 0 {
		return pe.StatusCode >= http.StatusInternalServerError ||
			pe.StatusCode == http.StatusRequestTimeout || pe.StatusCode == http.StatusTooManyRequests
	}
	// No answer: the request failed in transport (refused, reset, timed
	// out), or the reply was cut short (the node went away while
	// answering). Anything else (an API error, a reply that does not
	// decode, one too large) is an answer, and would come again.
	var transport *url.Error
	var netErr net.Error
	return errors.As(pe.Err, &transport) || errors.As(pe.Err, &netErr) || errors.Is(pe.Err, io.ErrUnexpectedEOF)
}

// retryNote holds the longest Retry-After of the 429 and 503 answers in a
// call's current round; limitTransport writes it, call reads it. The
// attempts of a call are made one after the other, so it needs no lock.
type retryNote struct{ after time.Duration }

type retryNoteKey struct{}

// maxRetryAfter bounds a Retry-After (a day): far past any PublishTimeout,
// and no overflow.
const maxRetryAfter = 24 * time.Hour

// noteRetryAfter records the Retry-After header value v (delay-seconds or
// an HTTP date, RFC 9110 10.2.3) in the call's note, if ctx has one. A
// value that does not parse is ignored: the usual backoff applies.
func noteRetryAfter(ctx context.Context, v string) {
	note, ok := ctx.Value(retryNoteKey{}).(*retryNote)
	if !ok || v == "" {
		return
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// Digits: seconds (past 2^64, still a very long time).
		d = time.Duration(min(n, uint64(maxRetryAfter/time.Second))) * time.Second
		if err != nil {
			d = maxRetryAfter
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = min(time.Until(t), maxRetryAfter)
	} else {
		return
	}
	note.after = max(note.after, d)
}
