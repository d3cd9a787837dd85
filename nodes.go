package instant

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	retryBase     = 50 * time.Millisecond  // backoff: full jitter over retryBase<<round,
	retryCap      = time.Second            // capped
	probeInterval = 500 * time.Millisecond // between probes of a node marked down
	probeWait     = 50 * time.Millisecond  // how long the call that starts a probe waits
)

// call runs op on each node in turn (all but the last get a share of PublishTimeout), again after a
// backoff, until an answer or PublishTimeout; a node refusing or silent is skipped until a probe answers.
func (i *Instant) call(ctx context.Context, op func(context.Context, apiClient) error) (err error) {
	caller := cmp.Or(ctx, context.Background()) // a nil ctx is Background
	ctx, cancel := context.WithTimeout(caller, i.cfg.PublishTimeout)
	defer cancel()
	defer func() {
		if err != nil {
			i.stats.failed.Add(1)
		}
	}()
	if i.cfg.Server != nil {
		return op(ctx, serverAPI{i.cfg.Server})
	}
	var answered error // of the last attempt its time did not cut short
	for round := 0; ; round++ {
		var after time.Duration // the round's longest Retry-After
		for k, n := range i.nodes {
			if !i.takeNode(ctx, n) {
				continue
			}
			if k > 0 {
				i.stats.failedOver.Add(1)
			} else if round > 0 {
				i.stats.retried.Add(1)
			}
			actx, acancel := ctx, context.CancelFunc(func() {})
			if k < len(i.nodes)-1 {
				actx, acancel = context.WithTimeout(ctx, i.cfg.PublishTimeout/time.Duration(len(i.nodes)))
			}
			began := time.Now()
			err = op(actx, n)
			timedOut := actx.Err() != nil
			slow := timedOut && ctx.Err() == nil
			acancel()
			var pe *PublishError
			errors.As(err, &pe)
			retry := pe != nil && retryable(err)
			noAnswer := retry && pe.StatusCode == 0
			silent := timedOut && noAnswer && caller.Err() == nil
			switch {
			case silent:
				n.down.Store(i.tick())
				pe.Err = fmt.Errorf("no answer within %v, the node is marked down until it answers a probe (%w)", time.Since(began).Round(time.Millisecond), pe.Err)
				pe.unreachable = true
			case !timedOut && pe != nil && refused(err):
				n.down.Store(i.tick())
				pe.unreachable = true
			case !timedOut || !noAnswer:
				n.down.Store(0) // it answered, or took the request
			}
			if err == nil || !(slow || retry) {
				return err
			}
			if ctx.Err() != nil {
				if answered != nil && errors.Is(err, ctx.Err()) {
					return outOfTime(answered, ctx.Err(), silent)
				}
				return err
			}
			if !slow {
				answered = err
			}
			if pe != nil {
				after = max(after, pe.retryAfter)
			}
		}
		if i.nodesDown() == len(i.nodes) { // no node answers: fail now
			if err == nil { // every node skipped
				return op(ctx, downNodes{})
			}
			return err
		}
		if deadline, _ := ctx.Deadline(); after > 0 && time.Until(deadline) < after {
			return err
		}
		wait := max(rand.N(min(retryCap, retryBase<<min(round, 10)))+1, after)
		select {
		case <-ctx.Done():
			if err == nil { // every node skipped until the time ran out
				return op(ctx, downNodes{})
			}
			return outOfTime(err, ctx.Err(), false)
		case <-i.clock.after(wait):
		}
	}
}

// outOfTime marks err, a call's last answer, as cut short by cause.
func outOfTime(err, cause error, silent bool) error {
	var pe *PublishError
	if errors.As(err, &pe) && (silent || !errors.Is(err, cause)) {
		pe.cause, pe.unreachable = cause, pe.unreachable || silent
	}
	return err
}

var epoch = time.Now()

// clock is time's Now and After, or a test's fake: the marks of nodes down, the
// waits of call and takeNode, and the times the routes, the proxies and the
// token methods sign at (Check's own tokens read time's: a server checks them).
type clock struct {
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
}

// tick reads i's clock: never 0, the mark of a node that answers.
func (i *Instant) tick() int64 { return int64(i.clock.now().Sub(epoch)) + 1 }

type nodeState struct {
	down    atomic.Int64 // the tick() of its mark, or 0
	probing atomic.Bool
}

func (i *Instant) nodesDown() (n int) {
	for _, node := range i.nodes {
		if node.down.Load() != 0 {
			n++
		}
	}
	return n
}

// takeNode reports whether a call may try n: it is up, or this call's due probe (one at a time) answered within probeWait.
func (i *Instant) takeNode(ctx context.Context, n *gocentAPI) bool {
	due := func() bool { at := n.down.Load(); return at != 0 && i.tick()-at >= int64(probeInterval) }
	if n.down.Load() == 0 {
		return true
	}
	if !due() || !n.probing.CompareAndSwap(false, true) {
		return false
	}
	if !due() { // another probe ended meanwhile
		n.probing.Store(false)
		return n.down.Load() == 0
	}
	answer := make(chan bool, 1)
	go func() {
		pctx, cancel := context.WithTimeout(context.Background(), min(i.cfg.PublishTimeout, time.Second))
		err := n.info(pctx)
		cancel()
		var pe *PublishError
		up := err == nil || errors.As(err, &pe) &&
			(pe.StatusCode != 0 && pe.StatusCode < http.StatusInternalServerError || pe.StatusCode == 0 && !retryable(err))
		if up {
			n.down.Store(0)
		} else { // down from now, unless a call had an answer meanwhile
			for at := n.down.Load(); at != 0 && !n.down.CompareAndSwap(at, i.tick()); at = n.down.Load() {
			}
		}
		n.probing.Store(false)
		answer <- up
	}()
	select {
	case up := <-answer:
		return up
	case <-i.clock.after(probeWait):
	case <-ctx.Done():
	}
	return false
}

// refused reports whether err is a dial that found nothing listening.
func refused(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns) && dns.IsNotFound || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// retryable: err is a *PublishError whose node did not answer (transport, 5xx) or asked to be asked again (408, 429).
func retryable(err error) bool {
	var pe *PublishError
	if !errors.As(err, &pe) {
		return false
	}
	if pe.StatusCode != 0 {
		return pe.StatusCode >= http.StatusInternalServerError ||
			pe.StatusCode == http.StatusRequestTimeout || pe.StatusCode == http.StatusTooManyRequests
	}
	return errors.As(pe.Err, new(*url.Error)) || errors.As(pe.Err, new(net.Error)) || errors.Is(pe.Err, io.ErrUnexpectedEOF)
}

var errNodesDown = errors.New("no node of centrifugo (APIURL, APIURLs) answered its last attempt: " +
	"each refused the connection or let the time run out; calls fail at once until a node answers a probe (one every 500ms at most)")

// downNodes is the apiClient while every node is down: its calls fail at once.
type downNodes struct{}

func downError(op string, channels []string) error {
	return &PublishError{Op: op, Channels: channels, Err: errNodesDown, unreachable: true}
}

func (downNodes) publish(_ context.Context, chs []string, _ [][]byte, _, _ []string) error {
	return downError("publish", chs)
}
func (downNodes) disconnect(context.Context, string) error { return downError("disconnect", nil) }
func (downNodes) channels(context.Context, string) ([]string, error) {
	return nil, downError("channels", nil)
}
func (downNodes) userChannels(context.Context, string) ([]string, bool, error) {
	return nil, false, nil
}
func (downNodes) presenceBatch(_ context.Context, chs []string) ([][]presenceClient, error) {
	return nil, downError("presence", chs)
}
func (downNodes) unsubscribeAll(_ context.Context, _ string, chs []string) (int, error) {
	return len(chs), downError("unsubscribe", chs)
}
func (downNodes) holders(_ context.Context, _ string, chs []string) ([]string, bool, error) {
	return nil, false, downError("presence", chs)
}

// Stats are counters of the calls to Centrifugo, totals since New.
type Stats struct {
	Published  uint64 `json:"published"`   // events published in full (of a partly failed batch too)
	Retried    uint64 `json:"retried"`     // attempts made again on the same node, after a backoff
	FailedOver uint64 `json:"failed_over"` // moves to the next node of APIURLs
	Failed     uint64 `json:"failed"`      // calls that returned an error in the end
	// NodesDown counts nodes marked down now (refused or silent, no probe answered since, one every
	// 500ms at most): calls skip them, and fail at once with ErrUnreachable while all are down.
	NodesDown     int    `json:"nodes_down"`
	OutboxWritten uint64 `json:"outbox_written"` // events written to the outbox (BroadcastTx)
}

type counters struct {
	published, retried, failedOver, failed, outboxWritten atomic.Uint64
}

// Stats returns the counters so far. Safe for concurrent use.
func (i *Instant) Stats() Stats {
	if i == nil {
		return Stats{}
	}
	return Stats{
		Published:     i.stats.published.Load(),
		Retried:       i.stats.retried.Load(),
		FailedOver:    i.stats.failedOver.Load(),
		Failed:        i.stats.failed.Load(),
		OutboxWritten: i.stats.outboxWritten.Load(),
		NodesDown:     i.nodesDown(),
	}
}
