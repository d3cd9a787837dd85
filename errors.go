package instant

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, for errors.Is.
var (
	// ErrConfig marks every problem New finds in a Config.
	ErrConfig = errors.New("instant: invalid config")
	// ErrNotConfigured is returned by the package-level helpers when neither
	// Configure nor the environment gave a usable Config.
	ErrNotConfigured = errors.New("instant: not configured")
	// ErrNoSession means sessions.Sessions (gin-contrib/sessions) did not run
	// before the call that needs the session.
	ErrNoSession = errors.New("instant: no session: add r.Use(sessions.Sessions(name, store)) before instant's middleware")
	// ErrNotInstalled means the Instant is missing from the request: neither
	// Session() ran nor was a package default configured.
	ErrNotInstalled = errors.New("instant: not installed: add r.Use(instant.Session()) or call instant.Configure")
	// ErrInvalidChannel marks a bad channel name.
	ErrInvalidChannel = errors.New("instant: invalid channel name")
	// ErrInvalidUser marks a User that Login refuses, or that LoadUser
	// returned (the request then gets a 500: a server fault, never a login).
	ErrInvalidUser = errors.New("instant: invalid user")
	// ErrLoadUser marks a failure of Config.LoadUser: an error it
	// returned, a panic in it, or an invalid user.
	ErrLoadUser = errors.New("instant: could not load the user")
	// ErrLoginRequired means an anonymous visitor asked for what only
	// logged-in users get (Config.DisallowAnonymous, RequireUser).
	ErrLoginRequired = errors.New("instant: login required")
	// ErrNotAllowed means the rules do not let the user read the channel.
	ErrNotAllowed = errors.New("instant: channel not allowed")
	// ErrRuleFailed means a custom rule (Authorize) panicked, or answered
	// info that does not encode as JSON.
	ErrRuleFailed = errors.New("instant: channel rule failed")
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
	// API key (HTTP 401).
	ErrAPIKey = errors.New("instant: centrifugo refused the api key")
)

// PublishError reports a failed call to Centrifugo's server API. Err keeps
// the cause: a transport error, a gocent.ErrStatusCode for an HTTP failure,
// or a *gocent.Error for a refusal in the reply body.
type PublishError struct {
	// Op is the API call: "publish", "unsubscribe", "disconnect" or "history".
	Op string
	// Channels are the channels of the failed publications (or the
	// channel of another call; none for disconnect).
	Channels []string
	// StatusCode is the HTTP status when Centrifugo answered with a non-200, else 0.
	StatusCode int
	// Code and Message are Centrifugo's API error, when it gave one.
	Code    int
	Message string
	// Err is the underlying error.
	Err error
}

func (e *PublishError) Error() string {
	var b strings.Builder
	b.WriteString("instant: ")
	b.WriteString(e.Op)
	if len(e.Channels) > 0 {
		b.WriteByte(' ')
		b.WriteString(strings.Join(e.Channels, ","))
	}
	switch {
	case e.StatusCode != 0:
		fmt.Fprintf(&b, ": http status %d", e.StatusCode)
	case e.Code != 0:
		fmt.Fprintf(&b, ": centrifugo error %d %s", e.Code, e.Message)
	default:
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *PublishError) Unwrap() error { return e.Err }

// Is reports ErrAPIKey for a call refused with HTTP 401.
func (e *PublishError) Is(target error) bool {
	return target == ErrAPIKey && e.StatusCode == 401
}
