package instant

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

const (
	reauthBatch   = 1000 // commands (presence reads, unsubscribes) a request to the server
	decideWorkers = 8    // decisions at a time (rules may ask a database)
)

// Reauthorize applies a change to what u (as the app's store now holds them)
// may read: it unsubscribes u everywhere from the active private channels the
// decision now refuses (a failed rule refuses), then pushes
// "instant.reauthorized" to u's own channel; earlier tokens live on until they
// expire. It needs Config.LoadUser (else ErrConfig), refuses ErrInvalidUser;
// its error counts failed and unanswered (ErrUnreachable) unsubscribes. Calls
// retry as Broadcast's within ctx and PublishTimeout. Safe for concurrent use.
func (i *Instant) Reauthorize(ctx context.Context, u User) error {
	if i == nil {
		return ErrNotInstalled
	}
	if i.cfg.LoadUser == nil {
		return fmt.Errorf("%w: Reauthorize needs Config.LoadUser: without it a session keeps the roles of its login, and nothing can change them; keep the user's ID in the session and load the user from the app's store with LoadUser", ErrConfig)
	}
	user, err := u.normalized()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	revoked := i.revoke(ctx, user)
	if i.UserChannel(user.ID) != "" {
		ev := Event{Users: []string{user.ID}, EventClass: "instant.reauthorized", Message: "access changed"}
		if err := i.Broadcast(ctx, ev); err != nil {
			return errors.Join(revoked, fmt.Errorf("instant: reauthorize: could not tell the user's pages: %w", err))
		}
	}
	return revoked
}

// revoke ends u's subscriptions to the private channels the decision refuses.
func (i *Instant) revoke(ctx context.Context, u *User) error {
	var active []string
	err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
		// A Server knows what u reads; Centrifugo's API only what is read.
		known := false
		if active, known, err = api.userChannels(ctx, u.ID); err != nil || known {
			return err
		}
		active, err = api.channels(ctx, privatePrefix+"*")
		return err
	})
	if err != nil {
		return fmt.Errorf("instant: reauthorize: could not list the active channels: %w", err)
	}
	active = slices.DeleteFunc(active, func(ch string) bool {
		return !isPrivate(ch) || strings.HasPrefix(ch, i.channels.userPrefix)
	})
	slices.Sort(active)
	decided := make([]error, len(active))
	var wg sync.WaitGroup
	workers := make(chan struct{}, decideWorkers)
	for k, ch := range active {
		workers <- struct{}{}
		wg.Go(func() {
			defer func() { <-workers }()
			_, decided[k] = i.decide(i.ruleContext(ctx, u), u, ch)
		})
	}
	wg.Wait()
	var refused []string
	ruleFailures := 0
	for k, err := range decided {
		if err != nil {
			refused = append(refused, active[k])
		}
		if errors.Is(err, errRuleFailed) {
			ruleFailures++
		}
	}
	if ruleFailures > 0 {
		i.cfg.Logger.Error("instant: Reauthorize counted failed rules as refusals", "user", u.ID, "failures", ruleFailures)
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
		if unknowable { // no presence there: each is unsubscribed
			h = chunk
		}
		held = append(held, h...)
	}

	failed, unknown := 0, 0
	var first error
	for batch := range slices.Chunk(held, reauthBatch) {
		n := 0
		err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
			n, err = api.unsubscribeAll(ctx, u.ID, batch)
			return err
		})
		if err == nil {
			continue
		} else if n > 0 {
			failed += n // the server answered, and refused these
		} else {
			unknown += len(batch) // no answer: they may have been done
		}
		first = cmp.Or(first, err)
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("instant: reauthorize: of %d unsubscribes, %d failed and %d unknown (no answer), the first: %w", len(held), failed, unknown, first)
}
