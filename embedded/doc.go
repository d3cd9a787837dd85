// Package embedded runs the realtime server in the app's own process, in place
// of a Centrifugo: centrifuge, Centrifugo's engine, deciding as Centrifugo
// v6.9.1 with the config CentrifugoConfig writes. A module of its own, so that
// an app that never imports it links none of it; a blank import makes it the
// server of the package-level Session and Register when the environment names
// no Centrifugo.
package embedded
