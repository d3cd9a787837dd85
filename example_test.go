package instant_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// The three-line setup, a login handler, and a browser asking for a
// subscription token it may have and one it may not.
func Example() {
	inst, err := instant.New(instant.Config{
		APIURL:      "http://127.0.0.1:8000/api",
		APIKey:      "centrifugo-api-key",
		TokenSecret: "a-secret-of-at-least-32-bytes-long!",
	})
	if err != nil {
		log.Fatal(err)
	}
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore([]byte("cookie-secret-32-bytes-long-abcd"))))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))

	r.POST("/login", func(c *gin.Context) {
		// ... check the password, then:
		if err := instant.Login(c, instant.User{ID: "42", Username: "alice"}); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
		}
	})

	// A browser: log in, then ask for tokens.
	login := httptest.NewRecorder()
	r.ServeHTTP(login, httptest.NewRequest("POST", "/login", nil))
	for _, channel := range []string{"$site_users", "$site_admin"} {
		req := httptest.NewRequest("POST", "/instant/subscription_token", strings.NewReader(`{"channel":"`+channel+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Cookie", login.Header().Get("Set-Cookie"))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		fmt.Println(channel, w.Code)
	}
	fmt.Println(inst.ChannelsFor(&instant.User{ID: "42"}))
	// Output:
	// $site_users 200
	// $site_admin 403
	// [{site_public public } {$site_users users }]
}

// Broadcasting from a handler: Default(c) is the Instant that Session
// recorded, the same value as c.MustGet("instant").
func ExampleInstant_Broadcast() {
	handler := func(c *gin.Context) {
		err := instant.Default(c).Broadcast(c, instant.Event{
			Channel:    "$private_chan",
			Message:    "Private event",
			EventClass: "order.paid",
			Data:       map[string]any{"order": 1234},
		})
		if err != nil {
			c.AbortWithStatusJSON(http.StatusBadGateway, gin.H{"error": err.Error()})
			return
		}
		c.Status(http.StatusNoContent)
	}
	_ = handler

	// Outside a request: one call, one HTTP request to Centrifugo, for
	// every channel; each subscriber's copy names its own channel.
	inst, _ := instant.New(instant.Config{
		APIURL:      "http://127.0.0.1:1/api", // nothing listens here
		TokenSecret: "a-secret-of-at-least-32-bytes-long!",
	})
	err := inst.Broadcast(context.Background(), instant.Event{
		Target:  instant.LevelStaff, // no channel named: the first staff channel
		Message: "Deploy finished",
	})
	fmt.Println(err != nil)
	// Output: true
}

// A custom rule: a user reads the channel of their own orders only.
func ExampleInstant_Authorize() {
	inst, _ := instant.New(instant.Config{TokenSecret: "a-secret-of-at-least-32-bytes-long!"})
	err := inst.Authorize("$orders:{user}", func(c *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && p["user"] == u.ID, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	alice := &instant.User{ID: "42"}
	fmt.Println(inst.Allowed(nil, alice, "$orders:42"), inst.Allowed(nil, alice, "$orders:7"))
	// Output: true false
}
