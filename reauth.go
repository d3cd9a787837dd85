package instant

// Reauthorize: access that ends the moment the app says so. Three parts:
// the open subscriptions a user may no longer read are ended through the
// server API; Login sessions, which hold the roles of their login, follow
// the access records that Reauthorize keeps in Centrifugo; and the user's
// open pages are told to ask for their channels again.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// reauthorizedClass is the event_class of the push Reauthorize sends to the
// user's personal channel; client.js answers it by asking for its channels
// again and does not hand it to the page.
const reauthorizedClass = "instant.reauthorized"

// codeUnrecoverablePosition is Centrifugo's API error for a history read
// "since" a position its stream no longer holds (another epoch, or an
// offset gone).
const codeUnrecoverablePosition = 112

// Timing and bounds of the access records.
const (
	// accessPollEvery is how old what a replica knows of the access
	// records may get: a request finding its last look at the log older
	// than this looks again first. It bounds how long other replicas take
	// to follow a Reauthorize.
	accessPollEvery = time.Second
	// accessRecheck is how long a user's record, once read, is trusted
	// without reading it again (the log tells of every change meanwhile;
	// this only bounds the harm of a Reauthorize that failed half way).
	accessRecheck = 10 * time.Minute
	// accessLookupTimeout bounds a request's wait for Centrifugo when it
	// reads the log or a record: each node of APIURL and APIURLs is asked
	// once, in turn, for its share of it (no backoff: a request waits).
	accessLookupTimeout = time.Second
	// accessLogSize is how many changes the log keeps: a replica that
	// missed more than this since its last look forgets all it knew and
	// reads each user's record again.
	accessLogSize = 1000
	// accessMaxUsers bounds the users a replica remembers records of; past
	// it, it starts over.
	accessMaxUsers = 100_000
	// recordTTL is how long Centrifugo keeps a user's record (its
	// history_ttl, and the default lifetime of a gin-contrib/sessions
	// cookie): a Login session older than that goes back to the roles it
	// was logged in with.
	recordTTL = 720 * time.Hour
	// logTTL is how long the log keeps a change.
	logTTL = time.Hour
	// unsubscribeBatch is the most unsubscribe commands in one request,
	// and unsubscribeRequests the most such requests at a time.
	unsubscribeBatch    = 1000
	unsubscribeRequests = 4
	// decideWorkers is how many decisions Reauthorize makes at a time: as
	// many rules may run at once (they may ask a database).
	decideWorkers = 8
	// againAfter is when the pages of a Login app ask for their channels a
	// second time after the push: by then every replica has looked at the
	// log.
	againAfter = accessPollEvery + 500*time.Millisecond
)

// Reauthorize makes a change to what u may read take effect now. Call it
// after changing anything the decision looks at for u: Staff, Superuser,
// Groups, or anything a rule reads in the app's own store (a membership,
// a ban). u is the user as they are now (ID required, as Login wants it).
//
// It ends every open subscription of u, on every connection and every
// Centrifugo node, to a channel u may no longer read: it lists the active
// private channels (Centrifugo's channels call, a survey of every node),
// decides each for u by the same decision the routes use, and unsubscribes
// u from the refused ones, a thousand to a request. Channels still allowed
// are left alone; public channels and personal channels are not looked at
// (u may always read their own and never another's). Rules are called with
// a *gin.Context of Reauthorize's own (see AuthorizeFunc); a rule that
// panics counts as a refusal. The cost grows with the number of active
// private channels on the cluster (all of them are decided, not only u's:
// Centrifugo does not say who reads what).
//
// The routes and proxies decide with the new u from then on. With
// Config.LoadUser, the app's store answers for u, so nothing more is
// needed. Without it, Login sessions hold the roles of their login, so
// Reauthorize first records u in Centrifugo (history of the reserved
// channels "$<slug>_access:…" and "$<slug>_access_log:…", which no client
// may read and CentrifugoConfig declares) and a request whose session
// Login filled before that record sees u: on this replica at once, on
// other replicas of the app (every Instant on the same Centrifugo) within
// one second, as each reads the log at most a second old. A Login after
// the record wins over it. When a replica cannot ask Centrifugo, it keeps
// what it knew, and logs it; the records last as long as Centrifugo keeps
// history: 30 days with the Redis engine, until Centrifugo restarts with
// the memory engine (after which sessions go back to their login's roles).
//
// Last, it sends a push to u's personal channel (event_class
// "instant.reauthorized"), on which the browser helper asks for its
// channels again: new channels appear on u's open pages, refused ones move
// to denied.
//
// A client that kept a subscription token from before may still subscribe
// with it until it expires: Centrifugo cannot revoke a token, so keep
// SubscriptionTokenTTL short when that window matters. The subscribe proxy
// does not close it: Centrifugo asks no proxy about "$" channels, which
// always need a token.
//
// It returns nil when everything was done, or an error holding the count
// of what failed (and the first failure, a *PublishError). A User that
// Login would refuse is ErrInvalidUser, and nothing is done. Each call to
// Centrifugo is retried and failed over as Broadcast's, within ctx and
// PublishTimeout. Safe for concurrent use.
func (i *Instant) Reauthorize(ctx context.Context, u User) error {
	if i == nil {
		return ErrNotInstalled
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
	if i.cfg.LoadUser == nil {
		if err := i.recordAccess(ctx, user, time.Now()); err != nil {
			errs = append(errs, fmt.Errorf("instant: reauthorize: could not record the user for Login sessions: %w", err))
		}
	}
	if err := i.revoke(ctx, user); err != nil {
		errs = append(errs, err)
	}
	if i.UserChannel(user.ID) != "" {
		ev := Event{Users: []string{user.ID}, EventClass: reauthorizedClass, Message: "access changed"}
		if i.cfg.LoadUser == nil {
			// Other replicas follow within accessPollEvery: ask again then.
			ev.Data = map[string]int64{"again_ms": againAfter.Milliseconds()}
		}
		if err := i.Broadcast(ctx, ev); err != nil {
			errs = append(errs, fmt.Errorf("instant: reauthorize: could not tell the user's pages: %w", err))
		}
	}
	return errors.Join(errs...)
}

// revoke unsubscribes u from every active channel the decision now refuses
// them. The configured channels, decided without rules, go first; then
// the rest, a batch at a time, each batch's unsubscribes sent while the
// next is decided.
func (i *Instant) revoke(ctx context.Context, u *User) error {
	var active []string
	err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
		active, err = api.channels(ctx, privatePrefix+"*")
		return err
	})
	if err != nil {
		return fmt.Errorf("instant: reauthorize: could not list the active channels: %w", err)
	}
	var configured, others []string
	for _, ch := range active {
		switch {
		case !isPrivate(ch) || i.isAccessChannel(ch) || strings.HasPrefix(ch, i.channels.userPrefix):
			// never granted to a client, or not changed by roles
		case i.channels.byName[ch] != nil:
			configured = append(configured, ch)
		default:
			others = append(others, ch)
		}
	}
	slices.Sort(configured)
	slices.Sort(others)

	var wg sync.WaitGroup
	var mu sync.Mutex
	refused, failed, ruleFailures := 0, 0, 0
	var first error
	slots := make(chan struct{}, unsubscribeRequests)
	for _, group := range [][]string{configured, others} {
		for chunk := range slices.Chunk(group, unsubscribeBatch) {
			batch, failures := i.refusedOf(ctx, u, chunk)
			ruleFailures += failures
			if len(batch) == 0 {
				continue
			}
			refused += len(batch)
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				n := 0
				err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
					n, err = api.unsubscribeAll(ctx, u.ID, batch)
					return err
				})
				if err != nil {
					mu.Lock()
					failed += max(n, 1)
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if ruleFailures > 0 {
		i.logger.Error("instant: Reauthorize counted failed rules as refusals", "user", u.ID, "failures", ruleFailures)
	}
	if first != nil {
		return fmt.Errorf("instant: reauthorize: %d of %d unsubscribes failed, the first: %w", failed, refused, first)
	}
	return nil
}

// refusedOf decides channels for u, decideWorkers at a time (rules may ask
// a database), and returns those refused, in order, and how many rules
// failed.
func (i *Instant) refusedOf(ctx context.Context, u *User, channels []string) (refused []string, ruleFailures int) {
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
	for k, err := range out {
		if err != nil {
			refused = append(refused, channels[k])
		}
		if errors.Is(err, errRuleFailed) {
			ruleFailures++
		}
	}
	return refused, ruleFailures
}

// The access records. Reauthorize publishes, in one request, a record
// {"user","at"} to the user's own channel "$<slug>_access:<hash of the ID>"
// (history of one, kept recordTTL) and to the log "$<slug>_access_log:all"
// (the last accessLogSize changes, kept logTTL). A replica reads the log
// since where it last was, at most once per accessPollEvery, and a user's
// own channel once when it first needs them (and every accessRecheck). A
// gap in the log (Centrifugo lost it, or more changed than it keeps) makes
// the replica forget and read the users' records again.

// accessNamespaces are the namespaces CentrifugoConfig declares for the
// records: history only, nothing a client may subscribe to, read or
// publish to.
func (i *Instant) accessNamespaces() []map[string]any {
	closed := func(name string, size int, ttl time.Duration) map[string]any {
		return map[string]any{
			"name":                          name,
			"allow_subscribe_for_client":    false,
			"allow_subscribe_for_anonymous": false,
			"history_size":                  size,
			"history_ttl":                   durationConfig(ttl),
			"history_meta_ttl":              durationConfig(recordTTL),
		}
	}
	return []map[string]any{
		closed(i.accessNamespace(), 1, recordTTL),
		closed(i.accessLogNamespace(), accessLogSize, logTTL),
	}
}

func durationConfig(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) + "s" }

// accessRecord is what Reauthorize recorded of a user.
type accessRecord struct {
	user *User // shared: never changed, handed out as clones
	at   int64 // Unix nanoseconds of the Reauthorize call
}

// recordJSON is an access record on the wire. User is encoded as Login
// encodes it in a session, and decoded the same way.
type recordJSON struct {
	User json.RawMessage `json:"user"`
	At   int64           `json:"at"`
}

func decodeRecord(raw []byte) *accessRecord {
	var r recordJSON
	if json.Unmarshal(raw, &r) != nil || r.At <= 0 {
		return nil
	}
	u := decodeUser(string(r.User))
	if u == nil {
		return nil
	}
	return &accessRecord{user: u, at: r.At}
}

// recordAccess publishes u's record, then knows it here at once.
func (i *Instant) recordAccess(ctx context.Context, u *User, now time.Time) error {
	rawUser, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	raw, err := json.Marshal(recordJSON{User: rawUser, At: now.UnixNano()})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	rec := decodeRecord(raw)
	if rec == nil {
		return fmt.Errorf("%w: the record does not decode", ErrInvalidUser)
	}
	channels := []string{i.accessChannel(u.ID), i.accessLogChannel()}
	err = i.call(ctx, func(ctx context.Context, api apiClient) error {
		// A key of their own: a retried request writes each record once.
		key := newEventID()
		return api.publish(ctx, channels, [][]byte{raw, raw}, []string{key, key}, nil)
	})
	if err != nil {
		return err
	}
	a := &i.access
	a.mu.Lock()
	a.store(u.ID, rec, time.Now().Add(accessRecheck))
	a.mu.Unlock()
	return nil
}

// streamPosition is a place in a channel's history.
type streamPosition struct {
	offset uint64
	epoch  string
}

// streamPub is one publication of a channel's history.
type streamPub struct {
	offset uint64
	data   json.RawMessage
}

// accessCache is what one replica knows of the access records.
type accessCache struct {
	mu      sync.RWMutex
	users   map[string]accessEntry
	pos     streamPosition // in the log, after the last look
	havePos bool
	polled  time.Time     // the last look at the log (tried); zero before the first
	polling chan struct{} // a look in flight, closed when it ends
	down    bool          // the last look failed: users' records are not read
	logged  time.Time     // the last failure logged
}

// accessEntry is one user's record (nil: none), trusted until until.
type accessEntry struct {
	rec   *accessRecord
	until time.Time
}

// store keeps rec as id's record, unless a newer one is known: records
// only ever get newer, so that a slow read finishing late cannot bring an
// old record back. Held: a.mu.
func (a *accessCache) store(id string, rec *accessRecord, until time.Time) {
	if a.users == nil || len(a.users) >= accessMaxUsers {
		a.users = make(map[string]accessEntry)
	}
	if old := a.users[id].rec; old != nil && (rec == nil || old.at > rec.at) {
		rec = old
	}
	a.users[id] = accessEntry{rec: rec, until: until}
}

// logFailure logs a failed read of the records, at most once a minute.
// Held: a.mu.
func (a *accessCache) logFailure(i *Instant, what string, err error, now time.Time) {
	if now.Sub(a.logged) < time.Minute {
		return
	}
	a.logged = now
	i.logger.Warn("instant: could not read "+what+" in Centrifugo; Login sessions keep the roles this replica knew "+
		"(is Centrifugo's config from CentrifugoConfig? it declares the "+i.accessNamespace()+" and "+i.accessLogNamespace()+" namespaces)",
		"error", err.Error())
}

// reauthorized returns the user of a Login session: u, or the record
// Reauthorize made of u.ID when it is newer than the login (loginAt).
func (i *Instant) reauthorized(ctx context.Context, u *User, loginAt int64) *User {
	if rec := i.latestAccess(ctx, u.ID); rec != nil && rec.at > loginAt && rec.user.ID == u.ID {
		return rec.user
	}
	return u
}

// latestAccess returns the latest record of the user with this ID, or nil.
func (i *Instant) latestAccess(ctx context.Context, id string) *accessRecord {
	a := &i.access
	now := time.Now()
	a.mu.RLock()
	fresh := !a.polled.IsZero() && now.Sub(a.polled) < accessPollEvery
	e, known := a.users[id]
	down := a.down
	a.mu.RUnlock()
	if !fresh {
		i.pollAccess(ctx)
		a.mu.RLock()
		e, known = a.users[id]
		down = a.down
		a.mu.RUnlock()
	}
	if known && now.Before(e.until) || down {
		return e.rec // down: Centrifugo did not answer; what this replica knew
	}
	return i.fetchAccess(ctx, id)
}

// fetchAccess reads the record of the user with this ID.
func (i *Instant) fetchAccess(ctx context.Context, id string) *accessRecord {
	var pubs []streamPub
	err := i.askOnce(ctx, func(ctx context.Context, api apiClient) (err error) {
		pubs, _, err = api.historyPage(ctx, i.accessChannel(id), 1, nil, true)
		return err
	})
	var rec *accessRecord
	if err == nil && len(pubs) > 0 {
		rec = decodeRecord(pubs[0].data)
	}
	a := &i.access
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.logFailure(i, "a user's access record", err, now)
		a.store(id, nil, now.Add(accessPollEvery)) // asked again in a second
	} else {
		a.store(id, rec, now.Add(accessRecheck))
	}
	return a.users[id].rec
}

// askOnce runs op against each node in turn, for its share of
// accessLookupTimeout, until one answers: what a request waits for, with
// no backoff and no second round (Reauthorize's calls use call).
func (i *Instant) askOnce(ctx context.Context, op func(context.Context, apiClient) error) error {
	ctx = context.WithoutCancel(ctx) // a read that others may wait for
	share := accessLookupTimeout / time.Duration(len(i.nodes))
	var err error
	for _, node := range i.nodes {
		actx, cancel := context.WithTimeout(ctx, share)
		err = op(actx, node)
		cancel()
		if err == nil || !(retryable(err) || errors.Is(err, context.DeadlineExceeded)) {
			return err
		}
	}
	return err
}

// pollAccess reads the log since where this replica last was, unless that
// was less than accessPollEvery ago. A look in flight is waited for, and a
// look begun is awaited, while Centrifugo answers; once it did not, the
// next looks go on in the background and requests use what is known
// meanwhile, rather than each wait for a Centrifugo that may hang.
func (i *Instant) pollAccess(ctx context.Context) {
	a := &i.access
	a.mu.Lock()
	if !a.polled.IsZero() && time.Since(a.polled) < accessPollEvery {
		a.mu.Unlock()
		return
	}
	down := a.down
	if wait := a.polling; wait != nil {
		a.mu.Unlock()
		if !down {
			<-wait
		}
		return
	}
	done := make(chan struct{})
	a.polling = done
	since, have := a.pos, a.havePos
	a.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	if down {
		go i.readLog(ctx, since, have, done)
		return
	}
	i.readLog(ctx, since, have, done)
}

// readLog is the look of pollAccess, which closes done when it ends.
func (i *Instant) readLog(ctx context.Context, since streamPosition, have bool, done chan struct{}) {
	a := &i.access
	limit, from := 0, (*streamPosition)(nil) // the first look: only where the log is
	if have {
		limit, from = accessLogSize, &since
	}
	var pubs []streamPub
	var top streamPosition
	read := func(ctx context.Context, api apiClient) (err error) {
		pubs, top, err = api.historyPage(ctx, i.accessLogChannel(), limit, from, false)
		return err
	}
	err := i.askOnce(ctx, read)
	var pe *PublishError
	if have && errors.As(err, &pe) && pe.Code == codeUnrecoverablePosition {
		// The log is not the one read before: Centrifugo restarted with
		// its memory engine, or the log expired (logTTL) while nobody
		// asked. Start again from where it is now, forgetting what was
		// read (below: have is false).
		have, limit, from = false, 0, nil
		err = i.askOnce(ctx, read)
	}

	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.polled, a.polling = now, nil
	defer close(done)
	if err != nil {
		a.down = true
		a.logFailure(i, "the access log", err, now)
		return
	}
	if a.down {
		a.down = false
		i.logger.Info("instant: the access records in Centrifugo are readable again")
	}
	switch {
	case !have || top.epoch != since.epoch:
		a.users = nil // the first look, or the log is not the one read before
	case top.offset == since.offset:
	case len(pubs) == 0 || pubs[0].offset != since.offset+1 || pubs[len(pubs)-1].offset != top.offset:
		a.users = nil // changes were missed
	default:
		for _, p := range pubs {
			if rec := decodeRecord(p.data); rec != nil {
				a.store(rec.user.ID, rec, now.Add(accessRecheck))
			}
		}
	}
	a.pos, a.havePos = top, true
}
