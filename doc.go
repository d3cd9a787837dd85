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
// A "$" channel is private: Centrifugo serves it only with a subscription
// token, which the routes sign (HS256, Config.TokenSecret, "sub" the
// session user's ID) when the role channels of Config, the user's own
// channel or a custom rule (Authorize) grant it; else they deny.
//
// Files, in a request's order (internal/seam is the one interface to a server):
//   - middleware.go: Session, CurrentUser, Default, the request's state
//   - user.go: User, its checks, Login, Logout, the decoded-user cache
//   - routes.go: Register, the token and channels routes, client.js
//   - access.go: the one decision, rules (Authorize), Allowed, tokens
//   - token.go: signing; names.go: channel names; roles.go: role channels
//   - origin.go, presence.go, proxy.go, reauth.go: the tab id, presence,
//     Centrifugo's proxies, Reauthorize
//   - publisher.go: Event, Broadcast, Disconnect; outbox.go: BroadcastTx
//   - apiclient.go: Centrifugo's API; nodes.go: the retry loop, Stats;
//     server.go: an in-process Server behind the same calls; errors.go
//   - instant.go, config.go: New, Config, ConfigFromEnv
//   - centrifugo.go: CentrifugoConfig; check.go: Check
package instant
