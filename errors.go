package instant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors, for errors.Is.
var (
	// ErrConfig marks every problem New finds in a Config.
	ErrConfig = errors.New("instant: invalid config")
	// ErrNoSession: sessions.Sessions (gin-contrib/sessions) did not run first.
	ErrNoSession = errors.New("instant: no session: add r.Use(sessions.Sessions(name, store)) before instant's middleware")
	// ErrNotInstalled: Session did not run first, or the *Instant is nil.
	ErrNotInstalled = errors.New("instant: not installed: add r.Use(inst.Session()) or r.Use(instant.Session())")
	// ErrInvalidChannel marks a bad channel name.
	ErrInvalidChannel = errors.New("instant: invalid channel name")
	// ErrInvalidUser marks a User that Login refuses or LoadUser returned
	// (the request then gets a 500).
	ErrInvalidUser = errors.New("instant: invalid user")
	// ErrLoginRequired: an anonymous visitor asked for what only logged-in
	// users get (Config.DisallowAnonymous, RequireUser).
	ErrLoginRequired = errors.New("instant: login required")
	// ErrNotAllowed: the rules do not let the user read the channel.
	ErrNotAllowed = errors.New("instant: channel not allowed")
	// ErrInvalidPattern marks a pattern Authorize refuses.
	ErrInvalidPattern = errors.New("instant: invalid channel pattern")
	// ErrNoChannel: an Event names no channel and no Users, and its Target
	// is unset or has no channel configured. Nothing was sent.
	ErrNoChannel = errors.New("instant: event has no channel")
	// ErrInvalidEvent marks an Event that cannot be sent (see Event).
	ErrInvalidEvent = errors.New("instant: invalid event")
	// ErrAPIKey matches a PublishError of an HTTP 401: Config.APIKey must
	// equal Centrifugo's http_api.key.
	ErrAPIKey = errors.New("instant: centrifugo refused the API key")
	// ErrUnreachable: nothing answers as Centrifugo where the app calls it
	// or sends browsers (Check); or, on a *PublishError, no node answered
	// the call (each refused the connection or let the time run out, or
	// every node is marked down: see Stats.NodesDown).
	ErrUnreachable = errors.New("instant: centrifugo unreachable")
	// ErrTokenSecret: Centrifugo refused a token the app signed (Check):
	// its client.token.hmac_secret_key is not TokenSecret.
	ErrTokenSecret = errors.New("instant: centrifugo refused the app's token")
	// ErrStaleConfig: the running Centrifugo's config does not fit the app
	// (Check), or, on a *PublishError, Centrifugo's error 102 (unknown
	// channel). Regenerate it with CentrifugoConfig and restart Centrifugo.
	ErrStaleConfig = errors.New("instant: centrifugo config is stale")
)

// Server faults, answered 500 (and false by Allowed): a failure of
// Config.LoadUser (an error, a panic, an invalid user), and a custom rule
// that panicked or answered info that does not encode.
var (
	errLoadUser   = errors.New("instant: could not load the user")
	errRuleFailed = errors.New("instant: channel rule failed")
)

// PublishError is the error of any call to the server's API (Centrifugo's,
// or the embedded Server's), not only of a publish: whatever the server
// answered, or that it did not. Its text is bounded (a few KiB).
// errors.Is matches ErrAPIKey (HTTP 401), ErrStaleConfig (error 102),
// ErrUnreachable (no node answered) and context.DeadlineExceeded (the
// time ran out: ctx, or Config.PublishTimeout, which bounds every call).
type PublishError struct {
	// Op is the API call: "publish", "disconnect", "presence", ….
	Op string
	// Channels are those of the failed publications, or of another call.
	Channels []string
	// StatusCode is the HTTP status of an answer other than 200, else 0.
	StatusCode int
	// Code and Message are Centrifugo's (first) API error, if any.
	Code    int
	Message string
	// Failed, set by BroadcastBatch when Centrifugo refused some
	// publications, lists the events not published in full (the others
	// were). Nil otherwise: what went out is unknown.
	Failed []int
	// Err is the cause: the transport's error, or the answer's text (at
	// most 4 KiB of it), never holding the API key or the token secret.
	Err error

	failedPubs  []int         // indices of the refused publications
	events      int           // the size of the batch, with Failed
	retryAfter  time.Duration // a 429's or 503's Retry-After
	unreachable bool          // refused, silent, or every node down
	cause       error         // the call's time ran out, or it was canceled, before a retry
}

// Bounds of PublishError's text.
const (
	errorChannels   = 3    // channels named, the others counted
	errorEvents     = 10   // failed events named, the others counted
	errorNameLength = 255  // bytes of a channel name
	errorCauseBytes = 1024 // bytes of the cause's text or Centrifugo's message
)

func (e *PublishError) Error() string {
	var b strings.Builder
	b.WriteString("instant: " + e.Op)
	sep := " "
	for _, ch := range e.Channels[:min(len(e.Channels), errorChannels)] {
		b.WriteString(sep + clip(ch, errorNameLength))
		sep = ","
	}
	if n := len(e.Channels) - errorChannels; n > 0 {
		fmt.Fprintf(&b, " and %d more", n)
	}
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		b.WriteString(": centrifugo refused the API key (HTTP 401): APIKey (CENTRIFUGO_HTTP_API_KEY) must equal centrifugo's http_api.key")
	case e.StatusCode != 0:
		fmt.Fprintf(&b, ": http status %d", e.StatusCode)
	case e.Code != 0:
		fmt.Fprintf(&b, ": centrifugo error %d %s", e.Code, clip(e.Message, errorCauseBytes))
		if e.Code == codeUnknownChannel {
			ns := "the channel's namespace"
			if len(e.Channels) > 0 && namespaceOf(e.Channels[0]) != "" {
				ns = fmt.Sprintf("namespace %q", clip(namespaceOf(e.Channels[0]), errorNameLength))
			}
			b.WriteString(": centrifugo's config does not declare " + ns + ": regenerate it with CentrifugoConfig (after every Authorize) and restart centrifugo")
		}
	case e.Err == nil:
		b.WriteString(": unknown error")
	default:
		b.WriteString(": " + clip(e.Err.Error(), errorCauseBytes))
	}
	if len(e.Failed) > 0 {
		plural, shown := "", make([]string, 0, errorEvents)
		if len(e.Failed) > 1 {
			plural = "s"
		}
		for _, idx := range e.Failed[:min(len(e.Failed), errorEvents)] {
			shown = append(shown, strconv.Itoa(idx))
		}
		fmt.Fprintf(&b, " (event%s %s", plural, strings.Join(shown, ", "))
		if n := len(e.Failed) - errorEvents; n > 0 {
			fmt.Fprintf(&b, " and %d more", n)
		}
		if e.events > 0 {
			fmt.Fprintf(&b, " of %d", e.events)
		}
		b.WriteString(" not published)")
	}
	switch {
	case e.cause == nil:
	case e.unreachable:
		b.WriteString(" (retried until the time ran out, the last attempt unanswered)")
	case errors.Is(e.cause, context.DeadlineExceeded):
		b.WriteString(" (retried until the time ran out)")
	default:
		b.WriteString(" (retried until the call was canceled)")
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

// Unwrap returns Err, the context's error when the time ran out before a
// retry, and the sentinels the error matches.
func (e *PublishError) Unwrap() []error {
	out := []error{e.Err}
	if e.cause != nil {
		out = append(out, e.cause)
	}
	if e.StatusCode == http.StatusUnauthorized {
		out = append(out, ErrAPIKey)
	}
	if e.StatusCode == 0 && e.Code == codeUnknownChannel {
		out = append(out, ErrStaleConfig)
	}
	if e.unreachable {
		out = append(out, ErrUnreachable)
	}
	return out
}
