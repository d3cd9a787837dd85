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
package instant
