// Package seam is the one interface between the instant core and a
// realtime server in the app's process (the embedded module).
package seam

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
)

// Server is a realtime server in the app's process. instant.New calls Bind
// first; the other methods are safe for concurrent use.
type Server interface {
	Bind(p Policy) error                                                       // a second Bind is an error
	Handler() http.Handler                                                     // the websocket, GET <group>/connection/websocket
	Publish(ctx context.Context, pubs []Publication) (failed []int, err error) // in order; the first error
	Unsubscribe(ctx context.Context, user string, channels []string) error     // in every process
	Disconnect(ctx context.Context, user string) error                         // the clients reconnect
	Presence(ctx context.Context, channels []string) ([][]Client, error)
	UserChannels(ctx context.Context, user string) ([]string, error) // in every process
	Check(ctx context.Context) error                                 // every problem, joined
	Describe() string                                                // for a log line
}

// Policy is what the Instant tells its server.
type Policy struct {
	TokenSecret       []byte                                       // signs connection and subscription tokens
	Channel           func(channel string) (c Channel, known bool) // known: in the Instant's namespaces (else 102)
	DisallowAnonymous bool
	Origins           []string // SiteOrigin and TrustedOrigins, as configured
	OutboxTable       string   // quoted, schema-qualified
	OutboxPartitions  int
}

// Channel is how one channel is served: a private one needs a subscription token.
type Channel struct{ Private bool }

// Publication is data to a channel, once per IdempotencyKey within the
// server's window, tagged "origin" when Origin is set.
type Publication struct {
	Channel, IdempotencyKey, Origin string
	Data                            []byte
}

// Client is one subscription in a presence, with its token's info.
type Client struct {
	ID, User string
	Info     json.RawMessage
}

// Errors the core tells apart.
var (
	ErrUnknownChannel = errors.New("unknown channel")
	ErrNotAvailable   = errors.New("not available")
)

// Factory builds the server of the package-level Session and Register when
// the environment names no Centrifugo; importing embedded registers one.
type Factory func(env func(string) string) (Server, error)

var factory atomic.Value // Factory

// Register records f; the last registration wins.
func Register(f Factory) { factory.Store(f) }

// Registered returns the Factory, or nil.
func Registered() Factory { f, _ := factory.Load().(Factory); return f }
