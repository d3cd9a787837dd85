// Command minimal is the README's example: a Gin app with instant's three
// lines, a login, a logout and a handler that broadcasts. Write the
// matching Centrifugo config, start Centrifugo with it, then the app:
//
//	export CENTRIFUGO_API_KEY=... CENTRIFUGO_TOKEN_HMAC_SECRET_KEY=... # at least 32 bytes
//	export SESSION_AUTH_KEY=... SESSION_ENCRYPTION_KEY=...           # 32 bytes each
//	go run ./minimal centrifugo-config > centrifugo.json && centrifugo -c centrifugo.json &
//	go run ./minimal
package main

import (
	"errors"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/memstore"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

func main() {
	inst, err := instant.New(instant.ConfigFromEnv()) // CENTRIFUGO_* variables
	if err != nil {
		log.Fatal(err) // every problem of the config, at once
	}
	if len(os.Args) > 1 && os.Args[1] == "centrifugo-config" {
		conf, err := inst.CentrifugoConfig(instant.CentrifugoOptions{AllowedOrigins: []string{"http://127.0.0.1:8080"}})
		if err != nil {
			log.Fatal(err)
		}
		os.Stdout.Write(conf)
		return
	}
	app, err := newApp(inst, []byte(os.Getenv("SESSION_AUTH_KEY")), []byte(os.Getenv("SESSION_ENCRYPTION_KEY")), os.Getenv("PRODUCTION") != "")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(newServer("127.0.0.1:8080", app).ListenAndServe())
}

// newServer cuts off slow and idle clients. No route streams (the
// websockets go to Centrifugo), so 30 s to answer is plenty.
func newServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 15 * time.Second}
}

func newApp(inst *instant.Instant, authKey, encryptionKey []byte, production bool) (*gin.Engine, error) {
	if len(authKey) < 32 || len(encryptionKey) != 32 {
		return nil, errors.New("SESSION_AUTH_KEY needs at least 32 bytes, SESSION_ENCRYPTION_KEY exactly 32")
	}
	// A server-side store: the cookie holds only a signed, encrypted session
	// ID, so Logout ends the login for every copy of the cookie.
	store := memstore.NewStore(authKey, encryptionKey)
	store.Options(sessions.Options{
		Path: "/", MaxAge: 12 * 60 * 60, // a login lasts 12 hours
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: production, // HTTPS only in production
	})

	r := gin.New()
	r.Use(gin.Logger(), gin.Recovery())
	r.Use(sessions.Sessions("app", store)) // gin-contrib/sessions
	r.Use(inst.Session())                  // the session user goes into the request
	inst.Register(r.Group("/instant"))     // the token routes the browser calls

	// The app's own POSTs refuse cross-site browser requests (CSRF, login
	// CSRF too), as instant's routes do.
	csrf := http.NewCrossOriginProtection()
	app := r.Group("/", func(c *gin.Context) {
		if err := csrf.Check(c.Request); err != nil {
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "cross-origin request refused"})
		}
	})
	app.POST("/login", func(c *gin.Context) {
		name := c.PostForm("username") // check the password here; this example trusts the form
		if err := instant.Login(c, instant.User{ID: name, Username: name, Staff: name == "staff"}); err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		c.Status(http.StatusNoContent)
	})
	app.POST("/logout", func(c *gin.Context) {
		u := instant.CurrentUser(c)
		if err := instant.Logout(c); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		if u != nil { // close the user's open connections too
			_ = instant.Default(c).Disconnect(c, u.ID)
		}
		c.Status(http.StatusNoContent)
	})
	app.POST("/orders", instant.RequireUser(), func(c *gin.Context) {
		err := instant.Default(c).Broadcast(c, instant.Event{
			Channel: "$site_staff", Message: "New order", EventClass: "order.created",
			Data: gin.H{"by": instant.CurrentUser(c).Username},
		})
		if err != nil { // nil once Centrifugo accepted the publication
			c.AbortWithStatusJSON(http.StatusBadGateway, gin.H{"error": "could not publish"})
			return
		}
		c.Status(http.StatusAccepted)
	})
	return r, nil
}
