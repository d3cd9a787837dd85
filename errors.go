package instant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors, for errors.Is.
var (
	ErrConfig = errors.New("instant: invalid config") // every problem New finds in a Config
	// ErrNoSession: gin-contrib/sessions' middleware did not run first.
	ErrNoSession = errors.New("instant: no session: add r.Use(sessions.Sessions(name, store)) before instant's middleware")
	// ErrNotInstalled: Session did not run first, or the *Instant is nil.
	ErrNotInstalled   = errors.New("instant: not installed: add r.Use(inst.Session()) or r.Use(instant.Session())")
	ErrInvalidChannel = errors.New("instant: invalid channel name")               // a bad channel name
	ErrInvalidUser    = errors.New("instant: invalid user")                       // a User that Login refuses or LoadUser returned
	ErrLoginRequired  = errors.New("instant: login required")                     // an anonymous visitor asked for what needs a login
	ErrNotAllowed     = errors.New("instant: channel not allowed")                // the rules do not let the user read the channel
	ErrInvalidPattern = errors.New("instant: invalid channel pattern")            // a pattern Authorize refuses
	ErrNoChannel      = errors.New("instant: event has no channel")               // an Event names no channel, and Target gives none
	ErrInvalidEvent   = errors.New("instant: invalid event")                      // an Event that cannot be sent (see Event)
	ErrAPIKey         = errors.New("instant: centrifugo refused the API key")     // HTTP 401: APIKey must be its http_api.key
	ErrUnreachable    = errors.New("instant: centrifugo unreachable")             // nothing answers as Centrifugo, or no node answered
	ErrTokenSecret    = errors.New("instant: centrifugo refused the app's token") // a token the app signed, by Check
	// ErrStaleConfig: Centrifugo's config does not fit the app (Check, error 102): regenerate it.
	ErrStaleConfig = errors.New("instant: centrifugo config is stale")
)

// Server faults, answered 500 (and false by Allowed).
var (
	errLoadUser   = errors.New("instant: could not load the user") // LoadUser failed
	errRuleFailed = errors.New("instant: channel rule failed")     // a custom rule panicked or answered info that does not encode
)

// PublishError is the error of any call to the server's API; its text is a few KiB at most.
// errors.Is matches ErrAPIKey (HTTP 401), ErrStaleConfig (error 102), ErrUnreachable (no node
// answered) and context.DeadlineExceeded (ctx or Config.PublishTimeout).
type PublishError struct {
	Op         string   // the API call: "publish", "disconnect", "presence", …
	Channels   []string // those of the failed publications, or of the call
	StatusCode int      // the HTTP status of an answer other than 200, else 0
	Code       int      // Centrifugo's (first) API error, if any
	Message    string
	Failed     []int // by BroadcastBatch: the events not published in full, when some were refused
	Err        error // the cause: the transport's error or the answer (at most 4 KiB), never a secret

	failedPubs  []int         // indices of the refused publications
	events      int           // the size of the batch, with Failed
	retryAfter  time.Duration // a 429's or 503's Retry-After
	unreachable bool          // refused, silent, or every node down
	cause       error         // ctx's error, ending the retries
}

func (e *PublishError) Error() string {
	var b strings.Builder
	b.WriteString("instant: " + e.Op)
	if len(e.Channels) > 0 {
		b.WriteString(" ")
		writeList(&b, e.Channels, 3, ",", func(ch string) string { return clip(ch, 255) })
	}
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		b.WriteString(": centrifugo refused the API key (HTTP 401): APIKey (CENTRIFUGO_HTTP_API_KEY) must equal centrifugo's http_api.key")
	case e.StatusCode != 0:
		fmt.Fprintf(&b, ": http status %d", e.StatusCode)
	case e.Code != 0:
		fmt.Fprintf(&b, ": centrifugo error %d %s", e.Code, clip(e.Message, 1024))
		if e.Code == codeUnknownChannel {
			ns := "the channel's namespace"
			if len(e.Channels) > 0 && namespaceOf(e.Channels[0]) != "" {
				ns = fmt.Sprintf("namespace %q", clip(namespaceOf(e.Channels[0]), 255))
			}
			b.WriteString(": centrifugo's config does not declare " + ns + ": regenerate it with CentrifugoConfig (after every Authorize) and restart centrifugo")
		}
	case e.Err == nil:
		b.WriteString(": unknown error")
	default:
		b.WriteString(": " + clip(e.Err.Error(), 1024))
	}
	if len(e.Failed) > 0 {
		b.WriteString(" (event" + strings.Repeat("s", min(len(e.Failed)-1, 1)) + " ")
		writeList(&b, e.Failed, 10, ", ", strconv.Itoa)
		if e.events > 0 {
			fmt.Fprintf(&b, " of %d", e.events)
		}
		b.WriteString(" not published)")
	}
	if e.cause != nil {
		until := "the call was canceled"
		if errors.Is(e.cause, context.DeadlineExceeded) {
			until = "the time ran out"
		}
		if e.unreachable {
			until += ", the last attempt unanswered"
		}
		b.WriteString(" (retried until " + until + ")")
	}
	return b.String()
}

// writeList writes the first n items, counting the others.
func writeList[T any](b *strings.Builder, items []T, n int, sep string, str func(T) string) {
	for k, item := range items[:min(len(items), n)] {
		if k > 0 {
			b.WriteString(sep)
		}
		b.WriteString(str(item))
	}
	if len(items) > n {
		fmt.Fprintf(b, " and %d more", len(items)-n)
	}
}

// clip cuts s to at most n bytes at a character boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Unwrap returns Err, the context's error that ended the retries, and the sentinels it matches.
func (e *PublishError) Unwrap() []error {
	out := slices.DeleteFunc([]error{e.Err, e.cause}, func(err error) bool { return err == nil })
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
