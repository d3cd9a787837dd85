// Package instant adds realtime private channels to Gin apps, served by a
// Centrifugo server or by the embedded server in the app's own process
// (package github.com/gin-instant/instant/embedded):
//
//	r.Use(sessions.Sessions("app", store)) // gin-contrib/sessions
//	r.Use(inst.Session())                  // the session user, on the request
//	inst.Register(r.Group("/instant"))     // the token routes browsers call
//
// inst comes from New, or the package-level Session and Register configure
// it from the environment (ConfigFromEnv). Login(c, User{...}) logs a user
// in; instant.Default(c).Broadcast(c, instant.Event{...}) sends an event.
//
// A channel starting with "$" is private: Centrifugo serves it only with a
// subscription token, which the routes sign for the session user, by one
// decision: the role channels of Config, the user's own channel, custom
// rules (Authorize); any other "$" channel is denied. Tokens are HS256
// JWTs signed with Config.TokenSecret; their "sub" is the session user's
// ID, never taken from a request.
//
// Files:
//
//   - instant.go: Instant, New, the package default
//   - config.go: Config, its defaults and checks, ConfigFromEnv
//   - middleware.go: Session, CurrentUser, Require..., the request's state
//   - user.go: User, its checks, the decoded-user cache
//   - access.go: the decision, Allowed, ConnectionToken, SubscriptionToken
//   - roles.go: levels and the channels of each role
//   - rules.go: Authorize and its patterns
//   - names.go: channel names, UserChannel
//   - routes.go, answers.go: Register, the routes and their answers
//   - token.go: Token and signing
//   - login.go: Login, Logout
//   - origin.go: Origin, the tab ids
//   - publisher.go: Event, Broadcast, BroadcastBatch
//   - outbox.go: BroadcastTx, OutboxDDL
//   - presence.go: Presence and its route
//   - reauth.go: Reauthorize
//   - proxy.go: Centrifugo's proxy routes
//   - apiclient.go, nodes.go: Centrifugo's HTTP API, retries and failover
//   - server.go: Config.Server, a server in the app's process
//   - centrifugo.go: CentrifugoConfig
//   - check.go, websocket.go: Check and its websocket client
//   - command.go: Command
//   - clientjs.go: client.js, the browser helper
//   - stats.go, errors.go: Stats, the errors
//
// internal/seam is the one interface between the core and the embedded
// server (embedded/).
package instant
