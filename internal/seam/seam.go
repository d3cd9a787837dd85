// Package seam is the one interface between the instant core and a
// realtime server in the app's own process (the embedded module). The core
// speaks to Centrifugo over its HTTP API and to such a server through
// Server; it imports no server.
package seam

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
)

// Server is a realtime server in the app's process. instant.New calls Bind
// once, before anything else; every other method is safe for concurrent
// use after it.
type Server interface {
	// Bind gives the server the Instant's policy; a second Bind is an error.
	Bind(p Policy) error
	// Handler is the websocket endpoint (GET <group>/connection/websocket).
	Handler() http.Handler
	// Publish publishes each publication in order, and returns the indices
	// of those that failed and the first error.
	Publish(ctx context.Context, pubs []Publication) (failed []int, err error)
	// Unsubscribe ends user's subscriptions to channels in every process.
	Unsubscribe(ctx context.Context, user string, channels []string) error
	// Disconnect closes every connection of user; the clients reconnect.
	Disconnect(ctx context.Context, user string) error
	// Presence returns the subscriptions of each channel, in order.
	Presence(ctx context.Context, channels []string) ([][]Client, error)
	// UserChannels returns the channels user is subscribed to, anywhere.
	UserChannels(ctx context.Context, user string) ([]string, error)
	// Check reports every problem of the server joined, nil for none.
	Check(ctx context.Context) error
	// Describe names the server for a log line ("embedded, memory").
	Describe() string
}

// Policy is what the Instant tells the server it binds.
type Policy struct {
	TokenSecret []byte // signs connection and subscription tokens (HS256)
	// Channel answers how a channel is served; known is false for one in
	// a namespace the Instant does not declare (Centrifugo's 102).
	Channel           func(channel string) (c Channel, known bool)
	DisallowAnonymous bool     // refuse connections without a user
	Origins           []string // SiteOrigin and TrustedOrigins, as configured
	// OutboxTable is BroadcastTx's table, quoted and schema-qualified, in
	// OutboxPartitions partitions.
	OutboxTable      string
	OutboxPartitions int
}

// Channel is how one channel is served: a private one needs a
// subscription token naming it, for the connection's user.
type Channel struct{ Private bool }

// Publication is data to a channel, published once per IdempotencyKey
// within the server's window, tagged "origin" when Origin is set.
type Publication struct {
	Channel        string
	Data           []byte
	IdempotencyKey string
	Origin         string
}

// Client is one subscription in a channel's presence, with the info its
// token carried (or nil).
type Client struct {
	ID, User string
	Info     json.RawMessage
}

// Errors a Server returns that the core tells apart.
var (
	ErrUnknownChannel = errors.New("unknown channel")
	ErrNotAvailable   = errors.New("not available")
)

// Factory builds the server of the package-level Session and Register
// when the environment names no Centrifugo; the embedded package registers
// one when imported.
type Factory func(env func(string) string) (Server, error)

var factory atomic.Pointer[Factory]

// Register records f as the Factory; the last registration wins.
func Register(f Factory) { factory.Store(&f) }

// Registered returns the Factory, or nil.
func Registered() Factory {
	if f := factory.Load(); f != nil {
		return *f
	}
	return nil
}
