package instant

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Backoff between rounds of attempts over the nodes: full jitter over an
// exponential step, capped.
const (
	retryBase = 50 * time.Millisecond
	retryCap  = 1 * time.Second
)

// call runs op against Centrifugo within ctx and PublishTimeout: against
// APIURL, then each of APIURLs in order while a node does not answer (a
// transport failure, a reply cut short, a 5xx, a 408 or a 429, or, while
// another node is left, no answer within its share of PublishTimeout:
// 1/nodes), and then again from the first after a backoff, until it
// succeeds, is refused (another 4xx, an API error: never retried), or the
// time is up. The backoff lasts at least as long as the longest
// Retry-After of the round's 429 and 503 answers; when that is past what
// is left of the time, call gives up at once. The last error is returned.
//
// A node that refused the connection (nothing listening) is marked down,
// and skipped by every call until probeInterval has passed; then the
// first call to come tries it again (the probe), while the others go on
// skipping it. When every node is marked down and no probe is due, call
// returns at once: with the refusal it met, or, having tried nothing,
// with op's error against downNodes; both are ErrUnreachable. A node
// that answers anything, or takes the request and answers nothing (a
// timeout), is not marked down: it gets its share of the time.
func (i *Instant) call(ctx context.Context, op func(context.Context, apiClient) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
	defer cancel()
	note := new(retryNote)
	ctx = context.WithValue(ctx, retryNoteKey{}, note)
	down := i.downMarks()
	var err error
	// answered is the error of the last attempt that ended on its own (an
	// answer, or a failure of the transport), not cut short by the call's
	// end: what the call returns (with the context's error, timeUp) when
	// its time runs out during a later attempt, as it does when the time
	// runs out between attempts.
	var answered error
	tried := false // an attempt was made in this call
	for round := 0; ; round++ {
		note.after = 0
		for k, node := range i.nodes {
			if !takeNode(&down[k]) {
				continue // refused lately: not tried again before its probe is due
			}
			// Past the first node (tried, or skipped as down): a failover.
			if k > 0 {
				i.stats.failedOver.Add(1)
			} else if round > 0 {
				i.stats.retried.Add(1)
			}
			tried = true
			actx, acancel := ctx, context.CancelFunc(func() {})
			if k < len(i.nodes)-1 {
				// Another node is left to fail over to: this one gets its
				// share. The last node of a round gets what time is left.
				actx, acancel = context.WithTimeout(ctx, i.attemptTimeout())
			}
			err = op(actx, node)
			slow := actx.Err() != nil && ctx.Err() == nil // this attempt's time ran out, not the call's
			if actx.Err() == nil && refused(err) {
				down[k].Store(clock())
			} else {
				down[k].Store(0) // it answered, or took the request
			}
			acancel()
			if err == nil || !(slow || retryable(err)) {
				if err != nil {
					i.stats.failed.Add(1)
				}
				return err
			}
			if ctx.Err() != nil {
				i.stats.failed.Add(1)
				if answered != nil && errors.Is(err, ctx.Err()) {
					return outOfTime(answered, ctx.Err())
				}
				return err
			}
			if !slow {
				answered = err
			}
		}
		if allDown(down) {
			// Nothing listens anywhere: fail now, not after the timeout.
			i.stats.failed.Add(1)
			if !tried {
				return op(ctx, downNodes{})
			}
			return err
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
			if err == nil { // every node skipped until the time ran out
				return op(ctx, downNodes{})
			}
			return outOfTime(err, ctx.Err())
		case <-t.C:
		}
	}
}

// timeUp is the error of a call whose time ran out (or whose ctx was
// canceled) after an attempt ended on its own: that attempt's error, which
// says what Centrifugo answered, and the context's, so that errors.Is(err,
// context.DeadlineExceeded) holds as PublishError says.
type timeUp struct{ last, cause error }

// outOfTime is last, which also matches cause when it did not already.
func outOfTime(last, cause error) error {
	if cause == nil || errors.Is(last, cause) {
		return last
	}
	return &timeUp{last: last, cause: cause}
}

func (e *timeUp) Error() string {
	if errors.Is(e.cause, context.DeadlineExceeded) {
		return e.last.Error() + " (retried until the time ran out)"
	}
	return e.last.Error() + " (retried until the call was canceled)"
}

func (e *timeUp) Unwrap() []error { return []error{e.last, e.cause} }

// probeInterval is how long a node that refused a connection is left
// alone before one call tries it again.
const probeInterval = 500 * time.Millisecond

// epoch starts clock.
var epoch = time.Now()

// clock reads the monotonic clock, in nanoseconds since epoch plus one:
// never 0, which marks a node that answers.
func clock() int64 { return int64(time.Since(epoch)) + 1 }

// downMarks returns the nodes' marks, one a node of i.nodes: when each
// last refused a connection (clock), or 0.
func (i *Instant) downMarks() []atomic.Int64 {
	i.stats.downOnce.Do(func() { i.stats.down = make([]atomic.Int64, len(i.nodes)) })
	return i.stats.down
}

// takeNode reports whether a call may try the node of mark now: it is not
// marked down, or its probe is due and this call is the one to make it
// (the mark moves on, so that the others keep skipping it meanwhile).
func takeNode(mark *atomic.Int64) bool {
	at := mark.Load()
	if at == 0 {
		return true
	}
	now := clock()
	return now-at >= int64(probeInterval) && mark.CompareAndSwap(at, now)
}

// allDown reports whether every node is marked down with no probe due.
func allDown(marks []atomic.Int64) bool {
	now := clock()
	for k := range marks {
		if at := marks[k].Load(); at == 0 || now-at >= int64(probeInterval) {
			return false
		}
	}
	return len(marks) > 0
}

// nodesDown counts the nodes marked down.
func (i *Instant) nodesDown() int {
	marks, n := i.downMarks(), 0
	for k := range marks {
		if marks[k].Load() != 0 {
			n++
		}
	}
	return n
}

// refused reports whether err is a connection that could not be made
// because nothing listens (connection refused, no route to the host or
// network, a name that does not resolve): a dial error that is not a
// timeout nor a cancellation.
func refused(err error) bool {
	var op *net.OpError
	if err == nil || !errors.As(err, &op) || op.Op != "dial" || op.Timeout() {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsNotFound
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// errNodesDown is the cause of a call that failed at once, every node
// marked down.
var errNodesDown = errors.New("centrifugo refused connections on every node (APIURL, APIURLs) at the last attempt; a node is tried again every 500ms")

// downNodes is the apiClient of a call made while every node is marked
// down: each call fails at once, as a node would have, naming the call.
type downNodes struct{}

func downError(op string, channels []string) error {
	return &PublishError{Op: op, Channels: channels, Err: errNodesDown}
}

func (downNodes) publish(_ context.Context, channels []string, _ [][]byte, _, _ []string) error {
	return downError("publish", channels)
}

func (downNodes) unsubscribe(_ context.Context, channel, _ string) error {
	return downError("unsubscribe", []string{channel})
}

func (downNodes) disconnect(context.Context, string) error { return downError("disconnect", nil) }

func (downNodes) history(_ context.Context, channel string, _ int) ([]json.RawMessage, error) {
	return nil, downError("history", []string{channel})
}

func (downNodes) presence(_ context.Context, channel string) ([]presenceClient, error) {
	return nil, downError("presence", []string{channel})
}

func (downNodes) presenceStats(_ context.Context, channel string) (presenceCount, error) {
	return presenceCount{}, downError("presence_stats", []string{channel})
}

func (downNodes) presenceBatch(_ context.Context, channels []string) ([][]presenceClient, error) {
	return nil, downError("presence", channels)
}

func (downNodes) channels(context.Context, string) ([]string, error) {
	return nil, downError("channels", nil)
}

func (downNodes) unsubscribeAll(_ context.Context, _ string, channels []string) (int, error) {
	return len(channels), downError("unsubscribe", channels)
}

func (downNodes) holders(_ context.Context, _ string, channels []string) ([]string, bool, error) {
	return nil, false, downError("presence", channels)
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
