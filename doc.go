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
// Each file holds one concern, named for it. A token request reads
// downhill, every file once: middleware.go (Session, Default, CurrentUser,
// the Require middlewares) → routes.go (Register, the route table, reading
// a request) → state.go (the request's state and its user, from LoadUser
// or the session) → access.go (the one decision: may this user read this
// channel) → token.go (signing) → answers.go (the HTTP answers). What they
// call sits below them: user.go (the User and the decoded-user cache),
// roles.go (levels, the channels of each role), rules.go (custom rules),
// origin.go (the origin ids the channels route hands out) and names.go
// (channel names, namespaces, personal channels, event ids). reauth.go
// holds Reauthorize, which the app calls.
//
// Beside the request: config.go Config, its defaults and its checks
// (ConfigFromEnv too); instant.go Instant and New; errors.go the errors;
// login.go Login and Logout; proxy.go Centrifugo's proxies; presence.go
// who is on a channel and the presence route; clientjs.go the browser
// helper client.js; publisher.go events (Broadcast, BroadcastBatch);
// outbox.go BroadcastTx and the outbox table; apiclient.go the Centrifugo
// API client (the one file that knows the client library) and the publish
// request with idempotency keys and tags; nodes.go retries, failover and
// nodes marked down; stats.go the counters (Stats); centrifugo.go the
// Centrifugo config; check.go, websocket.go and command.go Check and the
// app's subcommands; server.go the realtime server in the app's process
// (Config.Server), behind the same seam as Centrifugo's API
// (internal/seam). The tests follow the same names (config_test.go,
// access_test.go, ...); helpers_test.go holds the helpers they share.
package instant
