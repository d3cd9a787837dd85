// Package instant adds realtime private channels to Gin apps, served from
// the app's own process (the embedded server, package
// github.com/gin-instant/instant/embedded) or by a Centrifugo server.
//
// A Gin app adds three lines:
//
//	r.Use(sessions.Sessions("app", store)) // gin-contrib/sessions, any store
//	r.Use(inst.Session())                  // the session user goes into the request
//	inst.Register(r.Group("/instant"))     // token routes the browser calls
//
// where inst comes from New (or use the package-level Session and
// Register, configured from the environment: see ConfigFromEnv; they
// panic at startup when it does not configure them). A login handler
// calls Login(c, User{...}); any handler broadcasts with
//
//	instant.Default(c).Broadcast(c, instant.Event{Message: "Private event", Channel: "$private_chan"})
//
// # Channels and roles
//
// A channel whose name starts with "$" is private: Centrifugo lets nobody
// read it without a subscription token, and the token routes sign one only
// for a user the rules allow. Public channels are open to everyone; users
// channels to logged-in users; staff channels to staff and superusers;
// superuser channels to superusers; group channels to the group's members;
// custom rules (Authorize) decide the rest. A "$" channel that nothing
// grants is denied. One decision function answers every route, proxy,
// Allowed and SubscriptionToken.
//
// # Requests
//
// Session records the Instant and, on first use, the user on the request:
// CurrentUser(c) in a handler, CurrentUser(c.Request.Context()) from
// code that holds only a context or runs on another goroutine (ask for the
// user on the handler's goroutine first: the first load reads the
// session, which only that goroutine may touch). A *gin.Context is gin's
// to reuse once the handler returns: what may outlive a handler is
// c.Request.Context() or c.Copy().
//
// # Tokens
//
// Tokens are HS256 JWTs signed with Config.TokenSecret, the secret
// Centrifugo holds as client.token.hmac_secret_key. Their "sub" is always
// the session user's ID, never taken from a request.
//
// # Files
//
// One concern a file; a token request goes middleware.go → routes.go →
// state.go → access.go → token.go → answers.go. The tests follow the same
// names; helpers_test.go holds what they share.
//
//   - instant.go: Instant, New, the package default Instant
//   - config.go: Config, its defaults and checks, ConfigFromEnv
//   - middleware.go: Session, Default, CurrentUser, RequireUser, RequireStaff
//   - routes.go: Register, the routes, reading a request
//   - state.go: the request's state and its user (LoadUser or the session)
//   - access.go: the one decision, Allowed, ConnectionToken, SubscriptionToken
//   - token.go: Token and signing
//   - answers.go: the routes' HTTP answers
//   - user.go: User and the decoded-user cache
//   - login.go: Login, Logout
//   - roles.go: levels and the channels of each role
//   - rules.go: Authorize, the custom rules
//   - names.go: channel names, namespaces, personal channels, event ids
//   - origin.go: Origin, the tab ids the channels route hands out
//   - publisher.go: Event, Broadcast, BroadcastBatch
//   - outbox.go: BroadcastTx, OutboxDDL
//   - presence.go: Presence and the presence route
//   - reauth.go: Reauthorize
//   - proxy.go: Centrifugo's proxy routes
//   - apiclient.go: Centrifugo's HTTP API (the one file that knows its client library)
//   - nodes.go: retries, failover, nodes marked down
//   - server.go: Config.Server, a server in the app's process
//   - centrifugo.go: CentrifugoConfig
//   - check.go: Check
//   - websocket.go: the websocket client Check dials Centrifugo with
//   - clientjs.go: client.js, the browser helper
//   - stats.go: Stats
//   - errors.go: the errors
//
// internal/seam is the one interface between the core and a server in the
// app's process; the embedded module (embedded/) implements it on
// github.com/centrifugal/centrifuge. internal/centrifugotest starts the
// servers the tests use.
package instant
