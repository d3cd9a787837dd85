// Package embedded runs the realtime server inside the app's own process,
// in place of a Centrifugo: centrifuge, the engine Centrifugo is built on,
// speaking the same client protocol, so client.js and centrifuge-js work
// unchanged.
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
// It decides as Centrifugo v6.9.1 with the config CentrifugoConfig writes:
// the same refusals and codes, presence with joins and leaves and history
// with recovery on private channels, "to others" by tags, idempotent
// publishes. With Options.RedisAddress several processes serve as one; a
// process that stops tells its clients to reconnect and recover. It is a
// module of its own, so that an app that never imports it links none of
// centrifuge.
package embedded
