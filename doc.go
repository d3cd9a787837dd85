// Package instant adds realtime private channels to Gin apps, on the
// Centrifugo server.
//
// A Gin app adds three lines:
//
//	r.Use(sessions.Sessions("app", store)) // gin-contrib/sessions, any store
//	r.Use(inst.Session())                  // the session user goes into the request
//	inst.Register(r.Group("/instant"))     // token routes the browser calls
//
// where inst comes from New (or use the package-level Session and Register
// after Configure). A login handler calls Login(c, User{...}); any handler
// broadcasts with
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
// grants is denied.
//
// # Tokens
//
// Tokens are HS256 JWTs signed with Config.TokenSecret, the secret
// Centrifugo holds as client.token.hmac_secret_key. Their "sub" is always
// the session user's ID, never taken from a request.
package instant
