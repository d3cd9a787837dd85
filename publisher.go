package instant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one message to broadcast. Subscribers receive it as the JSON
// object {"id","channel","message","event_class","data","site","date","origin"}
// ("data" and "origin" omitted when empty).
//
// An event goes where it says and nowhere else: to Channel, Channels and
// the personal channels of Users, or, when it names none of them, to the
// first configured channel of the level its Target names. An event that
// names no channel, no Users and no Target is refused with ErrNoChannel
// and nothing is sent: the zero Event goes nowhere, never to the public
// channel.
//
// One publication (the payload above, as one channel receives it) is at
// most 1,044,480 bytes: 1 MiB less 4 KiB. Centrifugo drops a subscriber's
// connection (code 3008, slow) as soon as more than client.queue_max_size
// bytes (1 MiB by default) wait to be written to it, so a larger
// publication would cost every subscriber their connection; the 4 KiB
// are room for the envelope Centrifugo wraps a publication in. All the
// publications of one event (its payload once per channel) add up to at
// most 256 MiB, a million personal channels of a small event. A larger
// event is refused with ErrInvalidEvent before anything is sent.
//
// What goes out is valid UTF-8 JSON, nested at most 64 levels deep, or
// nothing goes out: ID, Message, EventClass and Site must be valid UTF-8
// (they are refused, not cleaned, with ErrInvalidEvent), and so must
// every string of Data as sent (a json.RawMessage, anywhere in Data, is
// checked byte for byte; other strings in Data are encoded by json.Marshal,
// which turns bytes that are not UTF-8 into U+FFFD). A browser drops its
// connection on a websocket text frame that is not UTF-8, and with history
// on it would receive the same event again at each reconnect. Data nests
// at most 64 arrays and objects deep (see maxJSONDepth): Centrifugo
// refuses a request nested more than 10,000 deep (its envelope included:
// an HTTP 400 that loses the other events of the request too), and its
// outbox consumer skips such a row once the transaction has committed.
type Event struct {
	// ID identifies the event, and is its idempotency key: the same ID is
	// the same event. Centrifugo publishes an ID once on a channel within
	// its idempotency window (5 minutes) and silently drops a second event
	// with the same ID there, so give each event an ID of its own and reuse
	// one only to resend the same event (a retry). Subscribers may drop an
	// id they have seen (client.js does). It must be valid UTF-8
	// (ErrInvalidEvent otherwise: IDs are never cleaned, since two cleaned
	// IDs could become one). Default: a new random id.
	ID string
	// Channel and Channels name the channels to publish to (duplicates are
	// sent once). Default: none.
	Channel  string
	Channels []string
	// Message is the human-readable text.
	Message string
	// EventClass lets clients tell events apart. Default: "default".
	EventClass string
	// Data is any JSON-encodable value, sent as JSON (a json.RawMessage is
	// sent as it is, after a validity check: one JSON value, valid UTF-8,
	// at most 64 levels deep). Omitted when nil, or when it encodes as
	// null (a nil pointer, map or slice).
	Data any
	// Site names the sender. Default: Config.SiteName.
	Site string
	// Target, used only when the event names no channel and no Users,
	// sends it to the first configured channel of that level (LevelPublic
	// to LevelSuperuser): it must be chosen, as in
	// Event{Target: LevelPublic, ...} to tell everyone. Default: the zero
	// Level, none, so an event that names nothing is refused
	// (ErrNoChannel), as is a level with no channel configured.
	Target Level
	// Users also delivers the event to these users' personal channels
	// (UserChannel), in the same single request to Centrifugo. Tens of
	// thousands are fine: the channels are listed in linear time.
	Users []string
	// Origin names the browser tab the change came from, sent as "origin"
	// (omitted when empty), and as the publication's tag "origin", so that
	// a tab that made a change and updated its own page is not told again:
	// Centrifugo does not send the event to the tab's subscriptions, which
	// the browser helper makes with the filter "origin not this tab's"
	// (where the namespace has allow_tags_filter, as CentrifugoConfig
	// writes it), and the helper drops what still comes carrying its
	// origin. Set it with Origin(c). A convenience, not a security
	// boundary: it only decides which tab skips the event. When set, it is
	// 1 to 64 letters, digits, '-' and '_' (ErrInvalidEvent otherwise).
	Origin string
}

// Broadcast publishes ev to its channels in one call to Centrifugo, each
// channel's copy naming that channel. A node that does not answer (a
// transport failure, a reply cut short, a 5xx, a 408 or 429, or, while a
// further node is left, nothing within its share of PublishTimeout) is
// retried with capped exponential backoff and jitter (a 429's or 503's
// Retry-After is waited for, or the call ends at once when it is past
// PublishTimeout), and the next node of Config.APIURLs is tried, within
// ctx and PublishTimeout; a refusal (another 4xx, an API error) is not
// retried. Every publication carries the event's id as Centrifugo's
// idempotency key: a publish sent again (a retry, a failover, or ev sent
// again with its ID) within Centrifugo's idempotency window (5 minutes)
// is not published twice on a channel. It returns nil only after Centrifugo
// answered every publication with a result, or else an error:
// ErrNoChannel, ErrInvalidChannel or ErrInvalidEvent before anything is
// sent (an event that names no channel, no Users and no Target level is
// ErrNoChannel; one whose publication would be larger than Centrifugo
// delivers, whose text is not valid UTF-8, whose Data nests too deep, or
// whose Origin is malformed, is ErrInvalidEvent: see Event;
// a public name such as "staff_news" whose "$" form is a private
// channel is refused: it would publish a private event to everyone), else
// a *PublishError (errors.Is(err, ErrAPIKey) for a refused key,
// errors.Is(err, ErrStaleConfig) for a namespace Centrifugo's config
// lacks, errors.Is(err, ErrUnreachable) when no node answered: each
// refused the connection, or took the request and let the time run out,
// which also matches context.DeadlineExceeded; such a node is marked down
// and skipped until it answers a probe, so that while every node is down
// calls fail at once instead of waiting out PublishTimeout each, see
// Stats.NodesDown), within Config.PublishTimeout. A caller's ctx that ends
// first is no fault of Centrifugo's: its error is the context's. Safe for
// concurrent use.
func (i *Instant) Broadcast(ctx context.Context, ev Event) error {
	if i == nil {
		return ErrNotInstalled
	}
	channels, payloads, err := i.prepareEvent(&ev, time.Now())
	if err != nil {
		return err
	}
	keys := make([]string, len(channels))
	for k := range keys {
		keys[k] = ev.ID
	}
	var origins []string
	if ev.Origin != "" {
		origins = make([]string, len(channels))
		for k := range origins {
			origins[k] = ev.Origin
		}
	}
	return i.publishEvents(ctx, channels, payloads, keys, origins, nil)
}

// BroadcastBatch publishes several events in one call to Centrifugo: one
// API request carries every event's publications, in the order given, and
// Centrifugo publishes them in that order. It is the fast path for many
// events at once (an import, a fan-out to many users' channels): the round
// trip is paid once, not once an event.
//
// Each event is checked and completed as Broadcast does it (its ID, class,
// site); one that Broadcast would refuse fails the whole batch before
// anything is sent, with an error naming its index. events itself is not
// changed, so IDs it makes up are not handed back: to be able to send a
// batch again after an error, set each event's ID first: sent again
// within 5 minutes, the publications Centrifugo made already are not made
// twice (the ids are idempotency keys, as Broadcast's). The call is
// retried and failed over as Broadcast's is.
//
// When Centrifugo refused some publications and made the others (a
// channel in a namespace it does not know, say), the error is a
// *PublishError whose Failed lists the indices into events of those not
// published in full, and every other event was published; Stats counts
// those as published. Any other error after sending (no answer, an HTTP
// error) says nothing of what went out: send the same events again. An
// empty batch sends nothing and returns nil. One request holds the whole
// batch: keep it to hundreds of events, a thousand or two at most. Safe
// for concurrent use.
func (i *Instant) BroadcastBatch(ctx context.Context, events []Event) error {
	if i == nil {
		return ErrNotInstalled
	}
	if len(events) == 0 {
		return nil
	}
	now := time.Now()
	channels := make([]string, 0, len(events)) // one channel an event, mostly
	keys := make([]string, 0, len(events))
	payloads := make([][]byte, 0, len(events))
	var origins []string // nil while no event has an origin
	ends := make([]int, len(events))
	for k := range events {
		ev := events[k]
		chs, p, err := i.prepareEvent(&ev, now)
		if err != nil {
			return fmt.Errorf("event %d: %w", k, err)
		}
		channels = append(channels, chs...)
		payloads = append(payloads, p...)
		for range chs {
			keys = append(keys, ev.ID)
		}
		if ev.Origin != "" && origins == nil {
			origins = make([]string, len(keys)-len(chs), cap(keys))
		}
		if origins != nil {
			for range chs {
				origins = append(origins, ev.Origin)
			}
		}
		ends[k] = len(channels)
	}
	return i.publishEvents(ctx, channels, payloads, keys, origins, ends)
}

// prepareEvent checks ev, completes it, and encodes one payload for each of
// its channels.
func (i *Instant) prepareEvent(ev *Event, now time.Time) (channels []string, payloads [][]byte, err error) {
	if channels, err = i.eventChannels(ev); err != nil {
		return nil, nil, err
	}
	if payloads, err = i.encodeEvent(ev, channels, now); err != nil {
		return nil, nil, err
	}
	return channels, payloads, nil
}

// publishEvents sends the publications of one or more events in one call
// to Centrifugo (see apiClient.publish) and counts the events published in
// full. ends[e] is one past the index of event e's last publication, for
// BroadcastBatch: a *PublishError after Centrifugo answered then lists in
// Failed the events it did not publish in full. Broadcast passes nil: one
// event, and Failed stays nil.
func (i *Instant) publishEvents(ctx context.Context, channels []string, payloads [][]byte, keys, origins []string, ends []int) error {
	err := i.call(ctx, func(ctx context.Context, api apiClient) error {
		return api.publish(ctx, channels, payloads, keys, origins)
	})
	events := max(len(ends), 1)
	if err == nil {
		i.stats.published.Add(uint64(events))
		return nil
	}
	var pe *PublishError
	if !errors.As(err, &pe) || pe.failedPubs == nil {
		return err // no answer, or one refusing the whole request
	}
	failed := failedEvents(pe.failedPubs, ends)
	i.stats.published.Add(uint64(events - len(failed)))
	if ends != nil {
		pe.Failed, pe.events = failed, len(ends)
	}
	return err
}

// failedEvents maps the indices of failed publications (ascending) to the
// indices of their events, once each; ends as publishEvents takes it (nil:
// a single event).
func failedEvents(pubs, ends []int) []int {
	if ends == nil {
		return []int{0}
	}
	var out []int
	e := 0
	for _, p := range pubs {
		for ends[e] <= p {
			e++
		}
		if len(out) == 0 || out[len(out)-1] != e {
			out = append(out, e)
		}
	}
	return out
}

// smallEventChannels is the most channels an event may list for
// eventChannels to drop duplicates by scanning what it kept, which
// allocates nothing; past it, a set keeps the listing linear.
const smallEventChannels = 16

// eventChannels lists ev's channels, once each, checked, in the order
// given: Channel, Channels, then the personal channels of Users. It runs
// in time linear in their number.
func (i *Instant) eventChannels(ev *Event) ([]string, error) {
	n := len(ev.Channels) + len(ev.Users)
	if ev.Channel != "" {
		n++
	}
	channels := make([]string, 0, max(n, 1))
	var seen map[string]struct{}
	if n > smallEventChannels {
		seen = make(map[string]struct{}, n)
	}
	add := func(ch string) {
		if seen == nil {
			if slices.Contains(channels, ch) {
				return
			}
		} else {
			if _, dup := seen[ch]; dup {
				return
			}
			seen[ch] = struct{}{}
		}
		channels = append(channels, ch)
	}
	if ev.Channel != "" {
		add(ev.Channel)
	}
	for _, ch := range ev.Channels {
		add(ch)
	}
	for _, id := range ev.Users {
		ch := i.UserChannel(id)
		if ch == "" {
			return nil, fmt.Errorf("%w: Users: %q has no personal channel", ErrInvalidUser, id)
		}
		add(ch)
	}
	if len(channels) == 0 {
		switch {
		case ev.Target == 0:
			return nil, fmt.Errorf("%w: it names no channel, no Users and no Target level; nothing was sent", ErrNoChannel)
		case ev.Target < LevelPublic || ev.Target > LevelSuperuser:
			return nil, fmt.Errorf("%w: no channel named, and Target %s has no channels of its own", ErrNoChannel, ev.Target)
		case len(i.channels.byLevel[ev.Target]) == 0:
			return nil, fmt.Errorf("%w: no channel named and no %s channel configured", ErrNoChannel, ev.Target)
		}
		channels = append(channels, i.channels.byLevel[ev.Target][0])
	}
	for _, ch := range channels {
		if err := validChannel(ch); err != nil {
			return nil, err
		}
		if private := i.privateTwin(ch); private != "" {
			return nil, fmt.Errorf("%w: %q is public, but %q is a private channel here: name it with %q", ErrInvalidChannel, ch, private, privatePrefix)
		}
	}
	return channels, nil
}

// privateTwin returns the "$" form of a public channel name when that form
// is a configured private channel or matches a custom rule: publishing to
// the public name would hand a private event to everyone. It returns ""
// for a name that is private already or has no private twin.
func (i *Instant) privateTwin(ch string) string {
	if isPrivate(ch) {
		return ""
	}
	private := privatePrefix + ch
	if _, ok := i.channels.byName[private]; ok || strings.HasPrefix(private, i.channels.userPrefix) {
		return private
	}
	for _, r := range *i.rules.Load() {
		if _, ok := r.match(private); ok {
			return private
		}
	}
	return ""
}

// maxEventBytes bounds the payload of one publication, as one channel
// receives it (see Event). Centrifugo (centrifuge's client writer)
// disconnects a subscriber as slow (3008) as soon as its outgoing queue
// holds more than client.queue_max_size bytes, 1 MiB by default, and one
// publication is queued as its whole push: a larger one drops every
// subscriber, whether or not it was written out first. The push adds an
// envelope to the payload ({"push":{"channel":...,"pub":{"data":...,
// "offset":...}}}, well under 2 KiB with a 255-byte channel name): 4 KiB
// are left for it. Centrifugo's HTTP API reads request bodies of any
// size, and websocket.message_size_limit (64 KiB) bounds what clients
// send, not what they receive: neither is the bound.
const maxEventBytes = 1<<20 - 4<<10

// maxEventTotalBytes bounds all the publications of one event together
// (its payload times its channels): they are encoded at once, sent in one
// request that Centrifugo reads whole, and a large payload sent to many
// users one by one could otherwise take all the memory of both. 256 MiB
// is a million personal channels of a small event.
const maxEventTotalBytes = 256 << 20

// errEventTooLarge is the refusal of an event over maxEventBytes; atLeast
// says that size is a lower bound, found before encoding.
func errEventTooLarge(size int, atLeast bool) error {
	prefix := ""
	if atLeast {
		prefix = "at least "
	}
	return fmt.Errorf("%w: one publication of the event would be %s%d bytes, more than the %d (1 MiB less 4 KiB) Centrifugo delivers to a subscriber at once (client.queue_max_size)",
		ErrInvalidEvent, prefix, size, maxEventBytes)
}

// encodeEvent encodes the payload once and splices in each channel's name.
// Every payload is a slice of one buffer, at most maxEventBytes long.
func (i *Instant) encodeEvent(ev *Event, channels []string, now time.Time) ([][]byte, error) {
	if ev.ID == "" {
		ev.ID = newEventID()
	}
	if ev.EventClass == "" {
		ev.EventClass = "default"
	}
	if ev.Site == "" {
		ev.Site = i.cfg.SiteName
	}
	if ev.Origin != "" && !validOrigin(ev.Origin) {
		return nil, fmt.Errorf("%w: Origin must be 1 to %d letters, digits, '-' and '_', as Origin(c) returns it", ErrInvalidEvent, maxOriginLength)
	}
	if err := eventText(ev); err != nil {
		return nil, err
	}
	// The strings are encoded at least as long as they are: a payload over
	// the bound is refused before anything large is encoded or copied.
	if n := len(ev.ID) + len(ev.Message) + len(ev.EventClass) + len(ev.Site) + len(ev.Origin); n > maxEventBytes {
		return nil, errEventTooLarge(n, true)
	}
	var data []byte
	switch d := ev.Data.(type) {
	case nil:
	case json.RawMessage:
		if len(d) > maxEventBytes {
			return nil, errEventTooLarge(len(d), true)
		}
		if len(d) > 0 && !json.Valid(d) {
			return nil, fmt.Errorf("%w: Data is not valid JSON", ErrInvalidEvent)
		}
		data = d
	default:
		var err error
		if data, err = json.Marshal(d); err != nil {
			return nil, fmt.Errorf("%w: Data: %w", ErrInvalidEvent, err)
		}
	}
	if err := checkJSON(data); err != nil {
		return nil, fmt.Errorf("%w: Data %w", ErrInvalidEvent, err)
	}
	if string(bytes.TrimSpace(data)) == "null" {
		data = nil // a nil pointer or map is no data either
	}
	if n := len(ev.ID) + len(ev.Message) + len(ev.EventClass) + len(ev.Site) + len(ev.Origin) + len(data); n > maxEventBytes {
		return nil, errEventTooLarge(n, true)
	}
	id, _ := json.Marshal(ev.ID)
	head := append(append([]byte(`{"id":`), id...), `,"channel":`...)
	tail, err := json.Marshal(struct {
		Message    string          `json:"message"`
		EventClass string          `json:"event_class"`
		Data       json.RawMessage `json:"data,omitempty"`
		Site       string          `json:"site"`
		Date       string          `json:"date"`
		Origin     string          `json:"origin,omitempty"`
	}{ev.Message, ev.EventClass, data, ev.Site, now.UTC().Format(time.RFC3339Nano), ev.Origin})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	tail[0] = ',' // {"message"... becomes ,"message"...
	fixed := len(head) + len(tail)
	if fixed+2 > maxEventBytes { // a channel name adds at least its quotes
		return nil, errEventTooLarge(fixed+2, true)
	}
	if len(channels) > maxEventTotalBytes/(fixed+2) {
		return nil, fmt.Errorf("%w: %d publications of at least %d bytes each are more than the %d MiB one event may add up to: send a large payload to a channel its readers share, not to each of them",
			ErrInvalidEvent, len(channels), fixed+2, maxEventTotalBytes>>20)
	}
	// One buffer for every payload: exactly its size when no channel name
	// needs escaping (the common case), grown by append otherwise. Channel
	// names are valid UTF-8 (validChannel), as appendJSONString needs.
	size := len(channels) * fixed
	for _, ch := range channels {
		size += len(ch) + 2
	}
	if size > maxEventTotalBytes {
		return nil, fmt.Errorf("%w: its %d publications add up to %d bytes, more than the %d MiB one event may: send a large payload to a channel its readers share, not to each of them",
			ErrInvalidEvent, len(channels), size, maxEventTotalBytes>>20)
	}
	buf := make([]byte, 0, size)
	ends := make([]int, len(channels))
	for k, ch := range channels {
		start := len(buf)
		buf = append(buf, head...)
		buf = appendJSONString(buf, ch)
		buf = append(buf, tail...)
		if n := len(buf) - start; n > maxEventBytes {
			return nil, errEventTooLarge(n, false)
		}
		ends[k] = len(buf)
	}
	payloads := make([][]byte, len(channels))
	start := 0
	for k, end := range ends {
		payloads[k] = buf[start:end:end]
		start = end
	}
	return payloads, nil
}

// eventText refuses an event whose text fields are not valid UTF-8:
// json.Marshal would replace the bytes with U+FFFD, changing the text
// (and two IDs cleaned so could become one, and Centrifugo would drop the
// second event as a duplicate).
func eventText(ev *Event) error {
	for _, f := range [...]struct{ name, value string }{
		{"ID", ev.ID}, {"Message", ev.Message}, {"EventClass", ev.EventClass}, {"Site", ev.Site},
	} {
		if !utf8.ValidString(f.value) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, f.name)
		}
	}
	return nil
}

// maxJSONDepth is how deeply an event's Data, or a token's info, may nest
// arrays and objects. Centrifugo decodes its API requests, outbox rows
// and tokens with encoding/json, which refuses JSON nested more than
// 10,000 deep, envelopes included; its subscribers' decoders may stop
// sooner (Ruby's JSON.parse at 100 by default). 64 leaves a payload
// (Data inside the event object) under 100 levels with any envelope
// around it, and no event or presence data of a real app nests so deep.
const maxJSONDepth = 64

// errNotUTF8 and errTooDeep say why checkJSON refused a value.
var (
	errNotUTF8 = errors.New("is not valid UTF-8")
	errTooDeep = fmt.Errorf("nests arrays and objects more than %d deep", maxJSONDepth)
)

// checkJSON checks, in one pass over data (valid JSON, or empty), what
// json.Valid does not: that its strings are valid UTF-8 (JSON
// outside strings is ASCII) and that it nests at most maxJSONDepth arrays
// and objects deep.
func checkJSON(data []byte) error {
	depth := 0
	for k := 0; k < len(data); k++ {
		switch data[k] {
		case '{', '[':
			if depth++; depth > maxJSONDepth {
				return errTooDeep
			}
		case '}', ']':
			depth--
		case '"':
			// To the closing quote: ASCII bytes at once, escapes skipped
			// (an escape never holds a byte over 0x7f), runes decoded.
			for k++; k < len(data) && data[k] != '"'; k++ {
				switch b := data[k]; {
				case b == '\\':
					k++
				case b >= utf8.RuneSelf:
					r, size := utf8.DecodeRune(data[k:])
					if r == utf8.RuneError && size == 1 {
						return errNotUTF8
					}
					k += size - 1
				}
			}
		}
	}
	return nil
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for k := 0; k < len(s); {
		b := s[k]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				k++
				continue
			}
			buf = append(buf, s[start:k]...)
			switch b {
			case '"', '\\':
				buf = append(buf, '\\', b)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			k++
			start = k
			continue
		}
		r, size := utf8.DecodeRuneInString(s[k:])
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:k]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
			start = k + size
		}
		k += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// Disconnect closes every connection of the user with this ID, for
// instance on logout or when a role changes. The clients are told to
// reconnect (code 4001): they ask the routes for new tokens, so they come
// back as whoever their session holds now (anonymous after a logout).
func (i *Instant) Disconnect(ctx context.Context, userID string) error {
	if i == nil {
		return ErrNotInstalled
	}
	if err := checkName(userID, "user ID"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidUser, err)
	}
	return i.call(ctx, func(ctx context.Context, api apiClient) error { return api.disconnect(ctx, userID) })
}
