// Package embedded runs the realtime server in the app's own process, in
// place of a Centrifugo: centrifuge, Centrifugo's engine, deciding as
// Centrifugo v6.9.1 with the config CentrifugoConfig writes. It is a module
// of its own, so that an app that never imports it links none of it.
//
//	srv, err := embedded.New(embedded.Options{})
//	inst, err := instant.New(instant.Config{TokenSecret: secret, Server: srv})
//	inst.Register(r.Group("/instant")) // also GET /instant/connection/websocket
//
// A blank import makes it the server of the package-level Session and
// Register when the environment names no Centrifugo.
package embedded
