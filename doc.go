// Package instant adds realtime private channels to Gin apps, on the
// Centrifugo server.
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
// instant.go holds Config and New; user.go the User and the decoded-user
// cache; channels.go levels, names and the configured channels; rules.go
// custom rules; roles.go the one decision; state.go the per-request state;
// middleware.go Session and the accessors; login.go Login and Logout;
// routes.go the route table and HTTP answers; token.go signing; origin.go
// the origin ids of browser tabs; proxy.go Centrifugo's proxies;
// publisher.go events (Broadcast, BroadcastBatch); publish_api.go the
// publish request with idempotency keys and tags; nodes.go retries,
// failover, nodes marked down and Stats; outbox.go BroadcastTx and the
// outbox table; presence.go who is on a channel and the presence route;
// reauth.go Reauthorize and the access records; clientjs.go serves the
// browser helper client.js; one file alone knows the API client library;
// centrifugo.go the Centrifugo config; check.go, websocket.go and
// command.go Check and the app's subcommands.
package instant
