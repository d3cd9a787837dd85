// Package seam is the one interface between the instant core and a
// realtime server that runs in the app's own process (the embedded
// package, github.com/gin-instant/instant/embedded). The core speaks to
// Centrifugo over its HTTP API, and to such a server through Server; it
// imports no server. Being internal, only this module's packages (the
// embedded module's included) can implement it.
package seam

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
)

// Server is a realtime server in the app's process. Bind is called once,
// by instant.New, before anything else; every other method is safe for
// concurrent use after it.
type Server interface {
	// Bind gives the server what the Instant decides: its token secret and
	// the channels it serves. A server serves one Instant: a second Bind
	// is an error.
	Bind(p Policy) error
	// Handler is the websocket endpoint browsers connect to (Register
	// mounts it at GET <group>/connection/websocket).
	Handler() http.Handler
	// Publish publishes each publication, in order. When some fail, it
	// returns their indices in failed and the first error.
	Publish(ctx context.Context, pubs []Publication) (failed []int, err error)
	// Unsubscribe ends user's subscriptions to channels, on every
	// connection of theirs and every process.
	Unsubscribe(ctx context.Context, user string, channels []string) error
	// Disconnect closes every connection of user; the clients reconnect.
	Disconnect(ctx context.Context, user string) error
	// Presence returns the subscriptions of each channel, in the order
	// of channels.
	Presence(ctx context.Context, channels []string) ([][]Client, error)
	// UserChannels returns the channels user is subscribed to, on any of
	// their connections, in every process.
	UserChannels(ctx context.Context, user string) ([]string, error)
	// Check reports what can be wrong with the server (Redis unreachable,
	// the outbox table missing), every problem joined; nil when nothing is.
	Check(ctx context.Context) error
	// Describe names the server for a log line ("embedded, memory").
	Describe() string
}

// Policy is what the Instant tells the server it binds.
type Policy struct {
	// TokenSecret signs the connection and subscription tokens (HS256).
	TokenSecret []byte
	// Channel answers how a channel is served; known false for a channel
	// in a namespace the Instant does not declare (Centrifugo's error 102,
	// unknown channel).
	Channel func(channel string) (c Channel, known bool)
	// DisallowAnonymous refuses connections without a user.
	DisallowAnonymous bool
	// Origins are the browser origins the Instant trusts (its SiteOrigin
	// and TrustedOrigins), which the websocket allows too.
	Origins []string
	// Logger receives the server's faults.
	Logger *slog.Logger
	// OutboxTable is the outbox table BroadcastTx writes to, quoted and
	// schema-qualified ("public"."centrifugo_outbox"), in OutboxPartitions
	// partitions; NotifyChannel is what BroadcastTx notifies at commit.
	OutboxTable      string
	OutboxPartitions int
	NotifyChannel    string
}

// Channel is how one channel is served.
type Channel struct {
	// Private channels need a subscription token whose "channel" claim
	// names them and whose "sub" is the connection's user.
	Private bool
}

// Publication is one publication: data to a channel.
type Publication struct {
	Channel string
	Data    []byte
	// IdempotencyKey: a publication with a key published within the
	// server's idempotency window is not published again.
	IdempotencyKey string
	// Origin, when set, tags the publication "origin" (a subscriber's
	// tags filter may leave it out).
	Origin string
}

// Client is one subscription in a channel's presence.
type Client struct {
	ID   string
	User string
	// Info is the info the subscription's token carried, or nil.
	Info json.RawMessage
}

// ErrUnknownChannel and ErrNotAvailable are errors a Server returns that
// the core tells apart.
var (
	ErrUnknownChannel = errors.New("unknown channel")
	ErrNotAvailable   = errors.New("not available")
)

// Factory builds the server the package-level Session and Register use
// when the environment names no Centrifugo. The embedded package registers
// one when it is imported (a blank import chooses it).
type Factory func(env func(string) string) (Server, error)

var (
	factoryMu sync.Mutex
	factory   Factory
)

// Register records f as the Factory; the last registration wins.
func Register(f Factory) {
	factoryMu.Lock()
	factory = f
	factoryMu.Unlock()
}

// Registered returns the Factory, or nil when none was registered.
func Registered() Factory {
	factoryMu.Lock()
	defer factoryMu.Unlock()
	return factory
}
