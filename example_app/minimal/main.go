// Command minimal is the app the README's five steps build: a Gin app with
// instant's three lines, a login, a logout, a handler that broadcasts, and
// a page (index.html) that shows the events. One environment serves the
// app and Centrifugo (which reads its own CENTRIFUGO_ names):
//
//	export CENTRIFUGO_HTTP_API_KEY=... CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY=... # the token secret: 32 bytes or more
//	export SESSION_AUTH_KEY=... SESSION_ENCRYPTION_KEY=...                        # 32 bytes each
//	npm install centrifuge@5 # the browser client: the app serves its dist/centrifuge.js
//	go build -o app ./minimal && ./app centrifugo-config centrifugo.json
//	centrifugo -c centrifugo.json &
//	./app check # optional: every mismatch with the running Centrifugo, each with its fix
//	./app       # then open http://127.0.0.1:8080
//
// The INSTANT_ variables of instant.ConfigFromEnv are read too
// (INSTANT_API_URL, default http://127.0.0.1:8000/api; INSTANT_SITE_ORIGIN,
// default http://127.0.0.1:8080), and CENTRIFUGE_JS, where npm put
// centrifuge.js (default node_modules/centrifuge/dist/centrifuge.js). At
// startup the app logs what instant.Check says of Centrifugo.
package main

import (
	"cmp"
	"context"
	_ "embed" // index.html
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/memstore"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// page is the app's one page: it logs in and out, posts orders, and
// shows the events, the channels and what went wrong.
//
//go:embed index.html
var page []byte

func main() {
	srv, err := setup(os.Args[1:])
	if err != nil {
		log.Fatal(err) // every problem of the config, at once
	}
	if srv != nil { // nil after the app's commands
		log.Fatal(srv.ListenAndServe())
	}
}

// setup builds the app from the environment, or runs the command args
// name and returns a nil server.
func setup(args []string) (*http.Server, error) {
	cfg := instant.ConfigFromEnv()
	cfg.SiteOrigin = cmp.Or(cfg.SiteOrigin, "http://127.0.0.1:8080") // where browsers load the pages
	inst, err := instant.New(cfg)
	if err != nil {
		return nil, err
	}
	switch {
	case len(args) == 2 && args[0] == "centrifugo-config": // app centrifugo-config FILE
		conf, err := inst.CentrifugoConfig(instant.CentrifugoOptions{AllowedOrigins: []string{cfg.SiteOrigin}})
		if err != nil {
			return nil, err
		}
		return nil, os.WriteFile(args[1], conf, 0o600) // it holds the secrets
	case len(args) == 1 && args[0] == "check": // app check: every mismatch, each with its fix
		return nil, inst.Check(context.Background())
	}
	if err := inst.Check(context.Background()); err != nil {
		log.Printf("centrifugo does not fit the app:\n%v", err) // each problem with its fix
	} else {
		log.Print("centrifugo fits the app")
	}
	// centrifuge-js comes from npm: `npm install centrifuge@5` beside the app.
	centrifugeJS := cmp.Or(os.Getenv("CENTRIFUGE_JS"), "node_modules/centrifuge/dist/centrifuge.js")
	if _, err := os.Stat(centrifugeJS); err != nil {
		return nil, fmt.Errorf("the page needs centrifuge-js: run `npm install centrifuge@5` here, or set CENTRIFUGE_JS to its dist/centrifuge.js (%v)", err)
	}
	app, err := newApp(inst, centrifugeJS, []byte(os.Getenv("SESSION_AUTH_KEY")), []byte(os.Getenv("SESSION_ENCRYPTION_KEY")), os.Getenv("PRODUCTION") != "")
	if err != nil {
		return nil, err
	}
	return newServer("127.0.0.1:8080", app), nil
}

// newServer cuts off slow and idle clients. No route streams (the
// websockets go to Centrifugo), so 30 s to answer is plenty.
func newServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 15 * time.Second}
}

func newApp(inst *instant.Instant, centrifugeJS string, authKey, encryptionKey []byte, production bool) (*gin.Engine, error) {
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
	inst.Register(r.Group("/instant"))     // the token routes the browser calls, and /instant/client.js
	r.GET("/", func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", page) })
	r.GET("/centrifuge.js", func(c *gin.Context) { c.File(centrifugeJS) })

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
