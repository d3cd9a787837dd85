// Package embedded runs the realtime server inside the app's own process,
// in place of a Centrifugo: the engine Centrifugo is built on
// (github.com/centrifugal/centrifuge), speaking the same client protocol,
// so client.js and centrifuge-js work unchanged.
//
//	srv, err := embedded.New(embedded.Options{})
//	...
//	inst, err := instant.New(instant.Config{TokenSecret: secret, Server: srv})
//	inst.Register(r.Group("/instant")) // also GET /instant/connection/websocket
//
// Or, with the package-level Session and Register, a blank import chooses
// it when the environment names no Centrifugo:
//
//	import _ "github.com/gin-instant/instant/embedded"
//
// The server takes the tokens the Instant's routes sign and decides as a
// Centrifugo v6.9.1 run with the config CentrifugoConfig writes: the same
// refusals with the same codes, presence with joins and leaves and
// history with recovery on private channels, "to others" by tags filter,
// idempotent publishes. With Options.RedisAddress, several processes on
// one Redis serve as one; a process that stops (a deploy) closes its
// websockets with a code that tells clients to reconnect, and they
// recover what they missed from the history.
//
// It is a module of its own: an app that never imports it links none of
// centrifuge, and the core keeps its lower Go version.
package embedded
