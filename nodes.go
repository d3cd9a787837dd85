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
// A node that refused the connection (nothing listening), or that let an
// attempt's time run out without answering (silent: its share, or
// PublishTimeout; not the caller's ctx, which is no fault of the node's),
// is marked down, and every call skips it, at once, until it answers a
// probe: Centrifugo's info call, with a timeout of its own (probeTimeout:
// PublishTimeout, at most 1s), made in the background by the first call
// to find it due (probeInterval after the mark, or after its last probe),
// one at a time; that call waits probeWait for the answer and tries the
// node when it came, the others go on skipping it. When every node is
// marked down, call returns at once: with the refusal or silence it met,
// or, having tried nothing, with op's error against downNodes; each
// matches ErrUnreachable (a silence also context.DeadlineExceeded). A node
// that answers a call anything (a 5xx included) is not marked down, and
// clears its mark; a probe needs an answer other than a 5xx.
func (i *Instant) call(ctx context.Context, op func(context.Context, apiClient) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	caller := ctx // the caller's own end is no fault of a node's
	ctx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
	defer cancel()
	if i.server != nil {
		// The server in this process: one attempt, never marked down (a
		// slow Redis is not a node that went away), nothing to fail over to.
		err := op(ctx, i.nodes[0])
		if err != nil {
			i.stats.failed.Add(1)
		}
		return err
	}
	note := new(retryNote)
	ctx = context.WithValue(ctx, retryNoteKey{}, note)
	nodes := i.nodeStates()
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
			if !i.takeNode(ctx, k) {
				continue // down: not tried before it answers a probe
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
			began := time.Now()
			err = op(actx, node)
			slow := actx.Err() != nil && ctx.Err() == nil // this attempt's time ran out, not the call's
			silent := actx.Err() != nil && caller.Err() == nil && unanswered(err)
			switch {
			case silent:
				nodes[k].down.Store(clock())
				err = noAnswer(err, time.Since(began))
			case actx.Err() == nil && refused(err):
				nodes[k].down.Store(clock())
			case actx.Err() == nil || !unanswered(err):
				nodes[k].down.Store(0) // it answered, or took the request
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
					return outOfTime(answered, ctx.Err(), silent)
				}
				return err
			}
			if !slow {
				answered = err
			}
		}
		if allDown(nodes) {
			// No node answers: fail now, not after the timeout.
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
			return outOfTime(err, ctx.Err(), false)
		case <-t.C:
		}
	}
}

// timeUp is the error of a call whose time ran out (or whose ctx was
// canceled) after an attempt ended on its own: that attempt's error, which
// says what Centrifugo answered, and the context's, so that errors.Is(err,
// context.DeadlineExceeded) holds as PublishError says; and ErrUnreachable
// when the attempt the time ran out in went unanswered (the node is marked
// down).
type timeUp struct {
	last, cause error
	silent      bool
}

// outOfTime is last, which also matches cause when it did not already (and
// ErrUnreachable when silent).
func outOfTime(last, cause error, silent bool) error {
	if cause == nil || errors.Is(last, cause) && !silent {
		return last
	}
	return &timeUp{last: last, cause: cause, silent: silent}
}

func (e *timeUp) Error() string {
	switch {
	case e.silent:
		return e.last.Error() + " (retried until the time ran out, the last attempt unanswered)"
	case errors.Is(e.cause, context.DeadlineExceeded):
		return e.last.Error() + " (retried until the time ran out)"
	}
	return e.last.Error() + " (retried until the call was canceled)"
}

func (e *timeUp) Unwrap() []error {
	if e.silent {
		return []error{e.last, e.cause, ErrUnreachable}
	}
	return []error{e.last, e.cause}
}

// unanswered reports whether err is a call's *PublishError that got no
// answer from the node: a failure of the transport (the time running out
// included), no HTTP status, no API error.
func unanswered(err error) bool {
	var pe *PublishError
	return errors.As(err, &pe) && pe.StatusCode == 0 && pe.Code == 0 && retryable(err)
}

// silence is the cause of a *PublishError whose node let the attempt's
// time run out without answering: it matches ErrUnreachable (see
// PublishError.Unwrap), and still the transport's error (the context's
// deadline).
type silence struct {
	after time.Duration
	cause error
}

func (e *silence) Error() string {
	return "no answer within " + e.after.Round(time.Millisecond).String() +
		", the node is marked down until it answers a probe (" + e.cause.Error() + ")"
}

func (e *silence) Unwrap() error { return e.cause }

// noAnswer marks err, an attempt's *PublishError with no answer, as a
// silence of after.
func noAnswer(err error, after time.Duration) error {
	var pe *PublishError
	if errors.As(err, &pe) && pe.Err != nil {
		pe.Err = &silence{after: after, cause: pe.Err}
	}
	return err
}

// Marking nodes down, and probing them.
const (
	// probeInterval is how long a node that refused a connection, or did
	// not answer a probe, is left alone before it is probed again.
	probeInterval = 500 * time.Millisecond
	// maxProbeTimeout bounds a probe's time (probeTimeout).
	maxProbeTimeout = time.Second
	// probeWait is how long the call that starts a probe waits for its
	// answer (to try the node when it answers) before it skips the node:
	// short, so that a call to a node that hangs still fails fast.
	probeWait = 50 * time.Millisecond
)

// probeTimeout is what a probe may take: PublishTimeout, at most 1s.
func (i *Instant) probeTimeout() time.Duration { return min(i.cfg.PublishTimeout, maxProbeTimeout) }

// epoch starts clock.
var epoch = time.Now()

// clock reads the monotonic clock, in nanoseconds since epoch plus one:
// never 0, which marks a node that answers.
func clock() int64 { return int64(time.Since(epoch)) + 1 }

// nodeState is what the calls know of one node of i.nodes.
type nodeState struct {
	// down is when the node was marked down (clock), or 0 while it
	// answers. Its probe is due probeInterval after.
	down atomic.Int64
	// probing is set while a probe of the node is in flight.
	probing atomic.Bool
}

// due reports whether the node is marked down and its probe is due.
func (n *nodeState) due() bool {
	at := n.down.Load()
	return at != 0 && clock()-at >= int64(probeInterval)
}

// nodeStates returns the nodes' states, one a node of i.nodes.
func (i *Instant) nodeStates() []nodeState {
	i.stats.nodeOnce.Do(func() { i.stats.nodes = make([]nodeState, len(i.nodes)) })
	return i.stats.nodes
}

// takeNode reports whether a call may try node k now: it is not marked
// down, or its probe was due, this call started it (one probe at a time:
// the other calls go on skipping the node), and the node answered within
// probeWait (and ctx).
func (i *Instant) takeNode(ctx context.Context, k int) bool {
	n := &i.nodeStates()[k]
	if n.down.Load() == 0 {
		return true
	}
	if !n.due() || !n.probing.CompareAndSwap(false, true) {
		return false
	}
	if !n.due() { // another probe ended meanwhile
		n.probing.Store(false)
		return n.down.Load() == 0
	}
	answer := i.probe(k)
	t := time.NewTimer(probeWait)
	defer t.Stop()
	select {
	case up := <-answer:
		return up
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// probe asks node k, in the background, whether it answers (Centrifugo's
// info call, within probeTimeout), marks it accordingly (up, or down with
// the next probe due after probeInterval), ends the probe (probing) and
// sends whether the node answered on the channel returned.
func (i *Instant) probe(k int) <-chan bool {
	answer := make(chan bool, 1)
	go func() {
		n := &i.nodeStates()[k]
		ctx, cancel := context.WithTimeout(context.Background(), i.probeTimeout())
		err := i.nodes[k].info(ctx)
		cancel()
		up := probeAnswered(err)
		if up {
			n.down.Store(0)
		} else {
			// Down again, the next probe after probeInterval; unless a call
			// had an answer from the node meanwhile (0).
			for at := n.down.Load(); at != 0 && !n.down.CompareAndSwap(at, clock()); at = n.down.Load() {
			}
		}
		n.probing.Store(false)
		answer <- up
	}()
	return answer
}

// probeAnswered reports whether err, a probe's, means the node answered:
// nil, an API error, or an HTTP status below 500 (a 401 is an answer).
// A 5xx, a transport failure or no answer in time is none.
func probeAnswered(err error) bool {
	if err == nil {
		return true
	}
	var pe *PublishError
	if !errors.As(err, &pe) {
		return false
	}
	if pe.StatusCode != 0 {
		return pe.StatusCode < http.StatusInternalServerError
	}
	return !retryable(err)
}

// allDown reports whether every node is marked down.
func allDown(nodes []nodeState) bool {
	for k := range nodes {
		if nodes[k].down.Load() == 0 {
			return false
		}
	}
	return len(nodes) > 0
}

// nodesDown counts the nodes marked down.
func (i *Instant) nodesDown() int {
	nodes, n := i.nodeStates(), 0
	for k := range nodes {
		if nodes[k].down.Load() != 0 {
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
var errNodesDown = errors.New("no node of centrifugo (APIURL, APIURLs) answered its last attempt: " +
	"each refused the connection or let the time run out; calls fail at once until a node answers a probe (one every 500ms at most)")

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

func (downNodes) info(context.Context) error { return downError("info", nil) }

func (downNodes) presence(_ context.Context, channel string) ([]presenceClient, error) {
	return nil, downError("presence", []string{channel})
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

func (downNodes) userChannels(context.Context, string) ([]string, bool, error) {
	return nil, false, nil
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
