// Package embedded runs the realtime server in the app's own process, in
// place of a Centrifugo: centrifuge, Centrifugo's engine, speaking the same
// protocol to client.js and centrifuge-js, and deciding as Centrifugo
// v6.9.1 with the config CentrifugoConfig writes.
//
//	srv, err := embedded.New(embedded.Options{})
//	inst, err := instant.New(instant.Config{TokenSecret: secret, Server: srv})
//	inst.Register(r.Group("/instant")) // also GET /instant/connection/websocket
//
// With the package-level Session and Register, a blank import chooses it
// when the environment names no Centrifugo:
//
//	import _ "github.com/gin-instant/instant/embedded"
//
// It is a module of its own: an app that never imports it links none of
// centrifuge.
package embedded
