package instant_test

import (
	"context"
	"encoding/json"
	"errors"
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
	// And the channels it may read, as the page asks for them.
	req := httptest.NewRequest("GET", "/instant/channels", nil)
	req.Header.Set("Cookie", login.Header().Get("Set-Cookie"))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	var listed struct {
		Channels []struct{ Name, Level string }
	}
	_ = json.Unmarshal(w.Body.Bytes(), &listed)
	fmt.Println(listed.Channels)
	// Output:
	// $site_users 200
	// $site_admin 403
	// [{site_public public} {$site_users users} {$site_user:42 personal}]
}

// printingCentrifugo stands in for Centrifugo's API in the examples: it
// prints each request's path and, for each command, the method, the
// channel and the event's message, class and channel, and answers every
// command with a result.
func printingCentrifugo() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("request to", r.URL.Path)
		var batch struct {
			Commands []struct {
				Publish struct {
					Channel string
					Data    struct {
						Channel, Message string
						EventClass       string `json:"event_class"`
					}
				}
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&batch)
		replies := make([]string, len(batch.Commands))
		for k, cmd := range batch.Commands {
			p := cmd.Publish
			fmt.Println("  publish", p.Channel, p.Data.Message, p.Data.EventClass, p.Data.Channel)
			replies[k] = `{"publish":{}}`
		}
		fmt.Fprint(w, `{"replies":[`+strings.Join(replies, ",")+`]}`)
	}))
}

// Broadcasting: one call, one HTTP request to Centrifugo for every
// channel, each subscriber's copy naming its own channel. A stand-in for
// Centrifugo's API prints what it receives.
func ExampleInstant_Broadcast() {
	centrifugo := printingCentrifugo()
	defer centrifugo.Close()

	inst, err := instant.New(instant.Config{
		APIURL:      centrifugo.URL + "/api",
		TokenSecret: "a-secret-of-at-least-32-bytes-long!",
	})
	if err != nil {
		log.Fatal(err)
	}
	// In a handler: instant.Default(c).Broadcast(c, ...), the same Instant.
	err = inst.Broadcast(context.Background(), instant.Event{
		Channels:   []string{"$site_staff", "$site_admin"},
		Message:    "Deploy finished",
		EventClass: "deploy.done",
	})
	fmt.Println("err:", err)
	// Output:
	// request to /api/batch
	//   publish $site_staff Deploy finished deploy.done $site_staff
	//   publish $site_admin Deploy finished deploy.done $site_admin
	// err: <nil>
}

// Many events in one request, published in order; Users names personal
// channels.
func ExampleInstant_BroadcastBatch() {
	centrifugo := printingCentrifugo()
	defer centrifugo.Close()

	inst, err := instant.New(instant.Config{
		APIURL:      centrifugo.URL + "/api",
		TokenSecret: "a-secret-of-at-least-32-bytes-long!",
	})
	if err != nil {
		log.Fatal(err)
	}
	err = inst.BroadcastBatch(context.Background(), []instant.Event{
		{Users: []string{"42"}, Message: "Order 1 shipped"},
		{Users: []string{"7"}, Message: "Order 2 shipped"},
		{Channel: "$site_staff", Message: "2 orders shipped", EventClass: "report"},
	})
	fmt.Println("err:", err)
	// Output:
	// request to /api/batch
	//   publish $site_user:42 Order 1 shipped default $site_user:42
	//   publish $site_user:7 Order 2 shipped default $site_user:7
	//   publish $site_staff 2 orders shipped report $site_staff
	// err: <nil>
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

// Check returns every problem it finds, each with its fix; here nothing
// answers at APIURL or WebsocketURL.
func ExampleInstant_Check() {
	inst, err := instant.New(instant.Config{
		APIURL:      "http://127.0.0.1:1/api", // nothing listens here
		TokenSecret: "a-secret-of-at-least-32-bytes-long!",
		SiteOrigin:  "http://127.0.0.1:8080",
	})
	if err != nil {
		log.Fatal(err)
	}
	err = inst.Check(context.Background())
	fmt.Println("unreachable:", errors.Is(err, instant.ErrUnreachable))
	// Output: unreachable: true
}

// An event goes only where it says. One that names no channel, no Users
// and no level is refused, and nothing is sent (an empty Event never
// reaches the public channel); to tell a level, choose it.
func ExampleEvent() {
	centrifugo := printingCentrifugo()
	defer centrifugo.Close()

	inst, err := instant.New(instant.Config{
		APIURL:      centrifugo.URL + "/api",
		TokenSecret: "a-secret-of-at-least-32-bytes-long!",
	})
	if err != nil {
		log.Fatal(err)
	}
	err = inst.Broadcast(context.Background(), instant.Event{Message: "Salary report"})
	fmt.Println("no channel:", errors.Is(err, instant.ErrNoChannel))
	err = inst.Broadcast(context.Background(), instant.Event{Target: instant.LevelPublic, Message: "Hello, everyone"})
	fmt.Println("err:", err)
	// Output:
	// no channel: true
	// request to /api/batch
	//   publish site_public Hello, everyone default site_public
	// err: <nil>
}
