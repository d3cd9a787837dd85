package instant

// Reauthorize: access that ends the moment the app says so. The app's own
// store is the one source of truth (Config.LoadUser reads it at every
// request); Reauthorize ends what the user already holds and tells their
// pages.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// reauthorizedClass is the event_class of the push Reauthorize sends to the
// user's personal channel; client.js answers it by asking for its channels
// again and does not hand it to the page.
const reauthorizedClass = "instant.reauthorized"

// Bounds of Reauthorize's work.
const (
	// reauthBatch is the most commands (presence reads, unsubscribes) in
	// one request to Centrifugo.
	reauthBatch = 1000
	// decideWorkers is how many decisions Reauthorize makes at a time: as
	// many rules may run at once (they may ask a database).
	decideWorkers = 8
)

// Reauthorize makes a change to what u may read take effect now. Call it
// after changing, in the app's store, anything the decision looks at for u:
// Staff, Superuser, Groups, or anything a rule reads (a membership, a
// ban). u is the user as the store now holds them (ID required, as Login
// wants it).
//
// It needs Config.LoadUser: the app's store answers every request for u,
// so the routes and proxies sign with the new roles from the next request
// on, on every replica, with nothing to wait for. On an Instant without
// LoadUser it changes nothing and returns an error matching ErrConfig: a
// Login session keeps the roles of its login until the user logs in
// again, so an app whose roles change keeps only the user's ID in the
// session and loads the user with LoadUser.
//
// It then ends u's open subscriptions to the channels u may no longer
// read, on every connection of u and every Centrifugo node, and touches
// nobody else: it lists the active private channels (Centrifugo's channels
// call), decides each for u with the decision the routes use (rules are
// called with a *gin.Context of Reauthorize's own, see AuthorizeFunc; a
// rule that panics counts as a refusal, logged), asks Centrifugo which of
// the refused ones u is in (presence, a thousand channels to a request),
// and unsubscribes u from those only: u's own connections are told, nobody
// else's. Centrifugo keeps presence in the namespaces of private channels
// only with CentrifugoOptions.Presence: without it, Centrifugo cannot tell
// who reads what, and u is unsubscribed from every refused active channel,
// each unsubscribe pushed to every connection of u (a cost that grows with
// the cluster's channels: turn Presence on in an app that calls
// Reauthorize). Public and personal channels are not looked at.
//
// Last, it sends a push to u's personal channel (event_class
// "instant.reauthorized"), on which the browser helper asks for its
// channels again: new channels appear on u's open pages, refused ones move
// to denied.
//
// A client that kept a subscription token from before may subscribe with
// it again until the token expires (Centrifugo cannot revoke a token), and
// Centrifugo closes a subscription whose token expired and was not
// refreshed within the delay CentrifugoConfig writes: at most
// SubscriptionTokenTTL and 10 seconds more (the README says how it was
// measured). Keep SubscriptionTokenTTL short when that window matters.
//
// It returns nil when everything was done. Otherwise the error tells what
// is known: unsubscribes Centrifugo refused ("failed"), and those whose
// answer never came ("unknown": they may have been done; the error then
// also matches ErrUnreachable or context.DeadlineExceeded), each with a
// count. A User that Login would refuse is ErrInvalidUser, and nothing is
// done. Each call to Centrifugo is retried and failed over as Broadcast's,
// within ctx and PublishTimeout. Safe for concurrent use.
func (i *Instant) Reauthorize(ctx context.Context, u User) error {
	if i == nil {
		return ErrNotInstalled
	}
	if i.cfg.LoadUser == nil {
		return fmt.Errorf("%w: Reauthorize needs Config.LoadUser: without it a session keeps the roles of its login, and nothing can change them; keep the user's ID in the session and load the user from the app's store with LoadUser", ErrConfig)
	}
	if err := u.validate(); err != nil {
		return err
	}
	user, err := u.normalized()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var errs []error
	if err := i.revoke(ctx, user); err != nil {
		errs = append(errs, err)
	}
	if i.UserChannel(user.ID) != "" {
		ev := Event{Users: []string{user.ID}, EventClass: reauthorizedClass, Message: "access changed"}
		if err := i.Broadcast(ctx, ev); err != nil {
			errs = append(errs, fmt.Errorf("instant: reauthorize: could not tell the user's pages: %w", err))
		}
	}
	return errors.Join(errs...)
}

// revoke ends u's subscriptions to the active private channels the
// decision now refuses them: those u is present in are unsubscribed, and,
// where Centrifugo cannot say (no presence in their namespace), every
// refused one.
func (i *Instant) revoke(ctx context.Context, u *User) error {
	var active []string
	known := false
	err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
		// A Server knows what u reads; Centrifugo's API only what is read.
		if active, known, err = api.userChannels(ctx, u.ID); err != nil || known {
			return err
		}
		active, err = api.channels(ctx, privatePrefix+"*")
		return err
	})
	if err != nil {
		return fmt.Errorf("instant: reauthorize: could not list the active channels: %w", err)
	}
	candidates := active[:0]
	for _, ch := range active {
		if isPrivate(ch) && !strings.HasPrefix(ch, i.channels.userPrefix) {
			candidates = append(candidates, ch)
		}
	}
	slices.Sort(candidates)
	refused := i.refusedOf(ctx, u, candidates)
	if len(refused) == 0 {
		return nil
	}

	var held []string
	for chunk := range slices.Chunk(refused, reauthBatch) {
		var h []string
		unknowable := false
		err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
			h, unknowable, err = api.holders(ctx, u.ID, chunk)
			return err
		})
		if err != nil {
			return fmt.Errorf("instant: reauthorize: could not ask which of %d refused channels the user is in; nothing was unsubscribed: %w", len(refused), err)
		}
		if unknowable {
			// Centrifugo keeps no presence there and cannot say whether u
			// reads them: each is unsubscribed.
			h = chunk
		}
		held = append(held, h...)
	}
	return i.unsubscribe(ctx, u.ID, held)
}

// unsubscribe unsubscribes the user from channels, reauthBatch to a
// request, and reports what is known of those that were not done.
func (i *Instant) unsubscribe(ctx context.Context, user string, channels []string) error {
	failed, unknown := 0, 0
	var first error
	for batch := range slices.Chunk(channels, reauthBatch) {
		refused := 0
		err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
			refused, err = api.unsubscribeAll(ctx, user, batch)
			return err
		})
		if err == nil {
			continue
		}
		if refused > 0 {
			failed += refused // Centrifugo answered, and refused these
		} else {
			unknown += len(batch) // no answer: they may have been done
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("instant: reauthorize: of %d unsubscribes, %d failed and %d unknown (no answer), the first: %w", len(channels), failed, unknown, first)
}

// refusedOf decides channels for u, decideWorkers at a time (rules may ask
// a database), and returns those refused, in order. A rule that failed
// counts as a refusal, and is logged once for the call.
func (i *Instant) refusedOf(ctx context.Context, u *User, channels []string) []string {
	out := make([]error, len(channels))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(decideWorkers, len(channels)) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < len(channels); k = int(next.Add(1) - 1) {
				_, out[k] = i.decide(i.ruleContext(ctx, u), u, channels[k])
			}
		})
	}
	wg.Wait()
	var refused []string
	ruleFailures := 0
	for k, err := range out {
		if err != nil {
			refused = append(refused, channels[k])
		}
		if errors.Is(err, errRuleFailed) {
			ruleFailures++
		}
	}
	if ruleFailures > 0 {
		i.logger.Error("instant: Reauthorize counted failed rules as refusals", "user", u.ID, "failures", ruleFailures)
	}
	return refused
}
