package instant

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one message to broadcast, received as the JSON object
// {"id","channel","message","event_class","data","site","date","origin"} ("data", "origin" omitted
// when empty). With no channel it goes to Target's first, else ErrNoChannel. ErrInvalidEvent: a
// publication over 1 MiB less 4 KiB, all over 256 MiB, text not UTF-8, or Data nested over 64 deep.
type Event struct {
	ID         string // the idempotency key: a repeat on a channel within 5 minutes is dropped; default random
	Channel    string // Channel, Channels and the personal channels of Users get it, each once
	Channels   []string
	Message    string   // human-readable text
	EventClass string   // lets clients tell events apart; default "default"
	Data       any      // JSON-encodable (a json.RawMessage is checked and compacted); omitted if null
	Site       string   // the sender; default Config.SiteName
	Target     Level    // its level gives the channel of an event that names none
	Users      []string // tens of thousands are fine
	// Origin is the browser tab that made the change (Origin(c)), sent as "origin" and as a tag so
	// that it does not get its own event: 1 to 64 letters, digits, '-' and '_'. Not a security boundary.
	Origin string
}

// Broadcast publishes ev within ctx and Config.PublishTimeout, retrying (failing over to the next
// of APIURLs) while a node does not answer or answers 408, 429 or 5xx; ev.ID keeps a retry from
// publishing twice. It returns ErrNoChannel, ErrInvalidChannel or ErrInvalidEvent before anything
// is sent, or a *PublishError. Safe for concurrent use.
func (i *Instant) Broadcast(ctx context.Context, ev Event) error {
	return i.publishEvents(ctx, []Event{ev}, false)
}

// BroadcastBatch publishes events in one request, in order, as Broadcast; one refused fails the
// batch before anything is sent, its index named. When Centrifugo refused some, PublishError.Failed
// lists the events not published in full; another error says nothing of what went out (events is
// not changed: set IDs to resend). Keep a batch to a thousand or two events.
func (i *Instant) BroadcastBatch(ctx context.Context, events []Event) error {
	if len(events) == 0 && i != nil {
		return nil
	}
	return i.publishEvents(ctx, events, true)
}

func (i *Instant) publishEvents(ctx context.Context, events []Event, batch bool) error {
	if i == nil {
		return ErrNotInstalled
	}
	now := time.Now()
	channels, keys, origins := make([]string, 0, len(events)), make([]string, 0, len(events)), make([]string, 0, len(events))
	payloads := make([][]byte, 0, len(events))
	ends := make([]int, len(events))
	for k := range events {
		ev := events[k]
		chs, p, err := i.prepareEvent(&ev, now)
		if err != nil && batch {
			return fmt.Errorf("event %d: %w", k, err)
		} else if err != nil {
			return err
		}
		channels, payloads = append(channels, chs...), append(payloads, p...)
		for range chs {
			keys, origins = append(keys, ev.ID), append(origins, ev.Origin)
		}
		ends[k] = len(channels)
	}
	err := i.call(ctx, func(ctx context.Context, api apiClient) error {
		return api.publish(ctx, channels, payloads, keys, origins)
	})
	var pe *PublishError
	if err != nil && (!errors.As(err, &pe) || pe.failedPubs == nil) {
		return err // no answer, or one refusing the whole request
	}
	var failed []int // the events not published in full
	if pe != nil {
		for _, p := range pe.failedPubs { // ascending
			if e, _ := slices.BinarySearch(ends, p+1); len(failed) == 0 || failed[len(failed)-1] != e {
				failed = append(failed, e)
			}
		}
		if batch {
			pe.Failed, pe.events = failed, len(events)
		}
	}
	i.stats.published.Add(uint64(len(events) - len(failed)))
	return err
}

func (i *Instant) eventChannels(ev *Event) ([]string, error) {
	n := len(ev.Channels) + len(ev.Users) + 1
	channels, seen := make([]string, 0, n), make(map[string]bool, n)
	add := func(ch string) {
		if !seen[ch] {
			channels, seen[ch] = append(channels, ch), true
		}
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
		if ev.Target < LevelPublic || ev.Target > LevelSuperuser || len(i.channels.byLevel[ev.Target]) == 0 {
			return nil, fmt.Errorf("%w: it names no channel and no Users, and Target (%s) gives none; nothing was sent", ErrNoChannel, ev.Target)
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

// privateTwin returns the "$" form of a public channel name that is a private channel, else "".
func (i *Instant) privateTwin(ch string) string {
	if isPrivate(ch) {
		return ""
	}
	private := privatePrefix + ch
	if _, ok := i.channels.byName[private]; ok || strings.HasPrefix(private, i.channels.userPrefix) ||
		slices.ContainsFunc(*i.rules.Load(), func(r rule) bool { _, ok := r.match(private); return ok }) {
		return private
	}
	return ""
}

const (
	maxEventBytes      = 1<<20 - 4<<10 // a publication: client.queue_max_size less 4 KiB of envelope
	maxEventTotalBytes = 256 << 20     // an event's publications
)

func errEventTooLarge(size int) error {
	return fmt.Errorf("%w: one publication of the event would be at least %d bytes, more than the %d (1 MiB less 4 KiB) Centrifugo delivers to a subscriber at once (client.queue_max_size)",
		ErrInvalidEvent, size, maxEventBytes)
}

// prepareEvent checks and completes ev, and encodes its payload for each channel in one buffer.
func (i *Instant) prepareEvent(ev *Event, now time.Time) (channels []string, payloads [][]byte, err error) {
	if channels, err = i.eventChannels(ev); err != nil {
		return nil, nil, err
	}
	if ev.ID == "" {
		ev.ID = newEventID()
	}
	ev.EventClass, ev.Site = cmp.Or(ev.EventClass, "default"), cmp.Or(ev.Site, i.cfg.SiteName)
	if ev.Origin != "" && !validOrigin(ev.Origin) {
		return nil, nil, fmt.Errorf("%w: Origin must be 1 to %d letters, digits, '-' and '_', as Origin(c) returns it", ErrInvalidEvent, maxOriginLength)
	}
	// Refused, not cleaned: two cleaned IDs could become one.
	for _, f := range [...][2]string{{"ID", ev.ID}, {"Message", ev.Message}, {"EventClass", ev.EventClass}, {"Site", ev.Site}} {
		if !utf8.ValidString(f[1]) {
			return nil, nil, fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, f[0])
		}
	}
	if raw, ok := ev.Data.(json.RawMessage); ok && len(raw) == 0 {
		ev.Data = nil // no data, which json.Marshal would refuse
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: Data: %w", ErrInvalidEvent, err)
	} else if err := checkJSON(data); err != nil {
		return nil, nil, fmt.Errorf("%w: Data %w", ErrInvalidEvent, err)
	} else if string(data) == "null" {
		data = nil // nil, or a nil pointer or map, is no data
	}
	if n := len(ev.ID) + len(ev.Message) + len(ev.EventClass) + len(ev.Site) + len(ev.Origin) + len(data); n > maxEventBytes {
		return nil, nil, errEventTooLarge(n)
	}
	enc, _ := json.Marshal(struct { // strings, and Data as encoded: never fails
		ID         string          `json:"id"`
		Channel    string          `json:"channel"`
		Message    string          `json:"message"`
		EventClass string          `json:"event_class"`
		Data       json.RawMessage `json:"data,omitempty"`
		Site       string          `json:"site"`
		Date       string          `json:"date"`
		Origin     string          `json:"origin,omitempty"`
	}{ev.ID, "", ev.Message, ev.EventClass, data, ev.Site, now.UTC().Format(time.RFC3339Nano), ev.Origin})
	// Each channel's name goes between head and tail (the ID's quotes are escaped: this is the field).
	cut := bytes.Index(enc, []byte(`"channel":""`)) + len(`"channel":`)
	head, tail := enc[:cut], enc[cut+2:]
	fixed := len(head) + len(tail) + 2                                     // a channel name adds at least its quotes
	size := len(channels) * min(fixed, maxEventTotalBytes/len(channels)+1) // no overflow
	for _, ch := range channels {
		if size += len(ch); size > maxEventTotalBytes {
			return nil, nil, fmt.Errorf("%w: its %d publications of at least %d bytes each add up to more than the %d MiB one event may: send a large payload to a channel its readers share, not to each of them",
				ErrInvalidEvent, len(channels), fixed, maxEventTotalBytes>>20)
		}
	}
	buf := make([]byte, 0, size) // its exact size, unless a name needs escaping
	payloads = make([][]byte, len(channels))
	for k, ch := range channels {
		start := len(buf)
		buf = append(appendJSONString(append(buf, head...), ch), tail...)
		if n := len(buf) - start; n > maxEventBytes {
			return nil, nil, errEventTooLarge(n)
		}
		payloads[k] = buf[start:len(buf):len(buf)]
	}
	return channels, payloads, nil
}

const maxJSONDepth = 64 // of Data or a token's info: under the 100 where some decoders stop

var (
	errNotUTF8 = errors.New("is not valid UTF-8")
	errTooDeep = fmt.Errorf("nests arrays and objects more than %d deep", maxJSONDepth)
)

// checkJSON: valid JSON data's strings are UTF-8 (browsers drop a connection on a frame that is not), its nesting maxJSONDepth at most.
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
		case '"': // to the closing quote, escapes skipped, runes decoded
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

// appendJSONString appends s as a JSON string, as json.Marshal writes it.
func appendJSONString(b []byte, s string) []byte {
	for k := 0; k < len(s); k++ {
		if c := s[k]; c < 0x20 || c >= utf8.RuneSelf || strings.IndexByte(`"\<>&`, c) >= 0 {
			q, _ := json.Marshal(s) // a string: never fails
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// Disconnect closes the user's connections (on logout, or a role change); they reconnect as the session says now.
func (i *Instant) Disconnect(ctx context.Context, userID string) error {
	if i == nil {
		return ErrNotInstalled
	}
	if err := checkName(userID, "user ID"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidUser, err)
	}
	return i.call(ctx, func(ctx context.Context, api apiClient) error { return api.disconnect(ctx, userID) })
}
