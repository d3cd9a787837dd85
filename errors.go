package instant

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinel errors, for errors.Is.
var (
	// ErrConfig marks every problem New finds in a Config.
	ErrConfig = errors.New("instant: invalid config")
	// ErrNoSession means sessions.Sessions (gin-contrib/sessions) did not run
	// before the call that needs the session.
	ErrNoSession = errors.New("instant: no session: add r.Use(sessions.Sessions(name, store)) before instant's middleware")
	// ErrNotInstalled means the Instant is missing: Session did not run
	// before the call, or the method was called on a nil *Instant.
	ErrNotInstalled = errors.New("instant: not installed: add r.Use(inst.Session()) or r.Use(instant.Session())")
	// ErrInvalidChannel marks a bad channel name.
	ErrInvalidChannel = errors.New("instant: invalid channel name")
	// ErrInvalidUser marks a User that Login refuses, or that LoadUser
	// returned (the request then gets a 500: a server fault, never a login).
	ErrInvalidUser = errors.New("instant: invalid user")
	// ErrLoginRequired means an anonymous visitor asked for what only
	// logged-in users get (Config.DisallowAnonymous, RequireUser).
	ErrLoginRequired = errors.New("instant: login required")
	// ErrNotAllowed means the rules do not let the user read the channel.
	ErrNotAllowed = errors.New("instant: channel not allowed")
	// ErrInvalidPattern marks a pattern Authorize refuses.
	ErrInvalidPattern = errors.New("instant: invalid channel pattern")
	// ErrNoChannel means an Event names no channel and no Users, and either
	// chose no Target level (the zero Level: such an event is never sent
	// to the public channel) or chose one that has no channel configured.
	// Nothing was sent.
	ErrNoChannel = errors.New("instant: event has no channel")
	// ErrInvalidEvent marks an Event that cannot be encoded.
	ErrInvalidEvent = errors.New("instant: invalid event")
	// ErrAPIKey matches a PublishError whose call Centrifugo refused for its
	// API key (HTTP 401): Config.APIKey must equal Centrifugo's
	// http_api.key.
	ErrAPIKey = errors.New("instant: centrifugo refused the API key")
	// ErrUnreachable means that nothing answers as Centrifugo at an address
	// the app calls (APIURL, APIURLs) or gives browsers (WebsocketURL), as
	// Check found; and it matches the *PublishError of a call (Broadcast
	// and the others) that no node answered: each refused the connection
	// (nothing listening) or took the request and let the call's time run
	// out (a hung Centrifugo; the error then also matches
	// context.DeadlineExceeded). Such a node is marked down; while every
	// node is down, calls fail at once (see Stats.NodesDown).
	ErrUnreachable = errors.New("instant: centrifugo unreachable")
	// ErrTokenSecret means that Centrifugo refused a connection token the
	// app signed, as Check found: its client.token.hmac_secret_key is not
	// the app's TokenSecret (or the two machines' clocks are apart).
	ErrTokenSecret = errors.New("instant: centrifugo refused the app's token")
	// ErrStaleConfig means that the running Centrifugo's config does not
	// fit the app, as Check found: a namespace of its channels or rules is
	// missing or has other options, or a site origin is not allowed. It
	// also matches the *PublishError of a call Centrifugo refused with its
	// error 102 (unknown channel): its config does not declare the
	// channel's namespace. Regenerate the config with CentrifugoConfig
	// (after every Authorize) and restart Centrifugo.
	ErrStaleConfig = errors.New("instant: centrifugo config is stale")
)

// Server faults, answered 500 by the routes and the Require middlewares
// (and false by Allowed): nothing a caller can tell apart, so unexported.
var (
	// errLoadUser marks a failure of Config.LoadUser: an error it
	// returned, a panic in it, or an invalid user.
	errLoadUser = errors.New("instant: could not load the user")
	// errRuleFailed means a custom rule (Authorize) panicked, or answered
	// info that does not encode as JSON.
	errRuleFailed = errors.New("instant: channel rule failed")
)

// PublishError reports a failed call to Centrifugo's server API. Its text
// is bounded (a few KiB) whatever the call: it names the first channels
// and counts the others. errors.Is(err, ErrAPIKey) reports a call refused
// for its API key (HTTP 401), errors.Is(err, ErrStaleConfig) one to a
// namespace Centrifugo's config lacks (error 102), errors.Is(err,
// ErrUnreachable) one no node answered (refused, silent, or every node
// marked down), and errors.Is(err, context.DeadlineExceeded) one that ran
// out of time (ctx or Config.PublishTimeout): a node that took the
// request and never answered matches both of the last two.
type PublishError struct {
	// Op is the API call: "publish", "disconnect" or "presence" (and
	// others the plugin makes itself).
	Op string
	// Channels are the channels of the failed publications (or the
	// channel of another call; none for disconnect).
	Channels []string
	// StatusCode is the HTTP status when Centrifugo answered with a non-200, else 0.
	StatusCode int
	// Code and Message are Centrifugo's API error, when it gave one (the
	// first, when it refused several publications).
	Code    int
	Message string
	// Failed is set by BroadcastBatch when Centrifugo answered each
	// publication and refused some: the indices into the batch of the
	// events it did not publish in full (at least one of their
	// publications refused), ascending. Every other event of the batch was
	// published. Nil otherwise: after a transport failure or an HTTP error
	// nobody knows which events went out (sending the batch again with the
	// same IDs is safe: Centrifugo drops what it already published).
	Failed []int
	// Err is the cause: the transport's error (net/http's, as
	// http.Client.Do returns it) when Centrifugo did not answer, else a
	// plain error holding the answer's text: the HTTP status and at most
	// 4 KiB of the reply, or Centrifugo's API error. Secrets (the API key,
	// the token secret) never appear in it.
	Err error

	failedPubs []int // indices of the refused publications, when Centrifugo answered
	events     int   // the size of the batch, with Failed
}

// Bounds of PublishError's text.
const (
	errorChannels   = 3    // channels named, the others counted
	errorEvents     = 10   // failed events named, the others counted
	errorNameLength = 255  // bytes of a channel name (MaxChannelLength)
	errorCauseBytes = 1024 // bytes of the cause's text or Centrifugo's message
)

func (e *PublishError) Error() string {
	var b strings.Builder
	b.WriteString("instant: ")
	b.WriteString(e.Op)
	for k, ch := range e.Channels[:min(len(e.Channels), errorChannels)] {
		if k == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(clip(ch, errorNameLength))
	}
	if n := len(e.Channels) - errorChannels; n > 0 {
		fmt.Fprintf(&b, " and %d more", n)
	}
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		b.WriteString(": centrifugo refused the API key (HTTP 401): APIKey (CENTRIFUGO_HTTP_API_KEY) must equal centrifugo's http_api.key")
	case e.StatusCode != 0:
		fmt.Fprintf(&b, ": http status %d", e.StatusCode)
	case e.Code == codeUnknownChannel:
		fmt.Fprintf(&b, ": centrifugo error %d %s: ", e.Code, clip(e.Message, errorCauseBytes))
		if ns := e.namespace(); ns != "" {
			fmt.Fprintf(&b, "centrifugo's config does not declare namespace %q", clip(ns, errorNameLength))
		} else {
			b.WriteString("centrifugo's config does not declare the channel's namespace")
		}
		b.WriteString(": regenerate it with CentrifugoConfig (after every Authorize) and restart centrifugo")
	case e.Code != 0:
		fmt.Fprintf(&b, ": centrifugo error %d %s", e.Code, clip(e.Message, errorCauseBytes))
	default:
		b.WriteString(": ")
		if e.Err == nil {
			b.WriteString("unknown error")
		} else {
			b.WriteString(clip(e.Err.Error(), errorCauseBytes))
		}
	}
	if len(e.Failed) > 0 {
		b.WriteString(" (")
		if len(e.Failed) == 1 {
			b.WriteString("event ")
		} else {
			b.WriteString("events ")
		}
		for k, idx := range e.Failed[:min(len(e.Failed), errorEvents)] {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(idx))
		}
		if n := len(e.Failed) - errorEvents; n > 0 {
			fmt.Fprintf(&b, " and %d more", n)
		}
		if e.events > 0 {
			fmt.Fprintf(&b, " of %d", e.events)
		}
		b.WriteString(" not published)")
	}
	return b.String()
}

// clip cuts s to at most n bytes, at a character boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// namespace is the namespace of the first of e's channels, or "".
func (e *PublishError) namespace() string {
	if len(e.Channels) == 0 {
		return ""
	}
	return namespaceOf(e.Channels[0])
}

// Unwrap returns Err and the sentinels the error matches: ErrAPIKey for a
// call refused with HTTP 401; ErrStaleConfig for Centrifugo's error 102
// (unknown channel: its config lacks the channel's namespace);
// ErrUnreachable for a call no node took (every node of APIURL and
// APIURLs refused the connection or went silent, lately or now) or whose
// node let its time run out without answering; so that errors.Is and
// errors.As see them.
func (e *PublishError) Unwrap() []error {
	out := []error{e.Err}
	if e.StatusCode == http.StatusUnauthorized {
		out = append(out, ErrAPIKey)
	}
	if e.StatusCode == 0 && e.Code == codeUnknownChannel {
		out = append(out, ErrStaleConfig)
	}
	var quiet *silence
	if e.StatusCode == 0 && e.Code == 0 && (errors.Is(e.Err, errNodesDown) || refused(e.Err) || errors.As(e.Err, &quiet)) {
		out = append(out, ErrUnreachable)
	}
	return out
}
