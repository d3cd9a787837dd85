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
package instant
