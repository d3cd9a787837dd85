package instant_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

func TestSessionWithoutSessionsMiddleware(t *testing.T) {
	inst, logs := loggedInstant(t, nil)
	r := gin.New()
	r.Use(inst.Session()) // sessions.Sessions missing
	reached := false
	r.GET("/", func(c *gin.Context) { reached = true })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 500 || !strings.Contains(w.Body.String(), "sessions.Sessions") {
		t.Errorf("got %d %s, want a 500 naming sessions.Sessions", w.Code, w.Body)
	}
	if reached {
		t.Error("handler ran without a session")
	}
	if errs := logs.errors(); len(errs) != 1 || !strings.Contains(errs[0], "sessions.Sessions") {
		t.Errorf("log lines %q, want one naming sessions.Sessions", errs)
	}
}

func TestLoginCurrentUserLogout(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	r.GET("/me", func(c *gin.Context) {
		u := instant.CurrentUser(c)
		if u == nil {
			c.JSON(200, gin.H{"user": nil})
			return
		}
		c.JSON(200, gin.H{"user": u.Username, "staff": u.IsStaff()})
	})
	r.POST("/login-and-read", func(c *gin.Context) {
		if err := instant.Login(c, root); err != nil {
			c.AbortWithStatus(500)
			return
		}
		c.JSON(200, gin.H{"user": instant.CurrentUser(c).Username})
	})
	b := newBrowser(t, r)
	if _, body := b.get("/me"); body["user"] != nil {
		t.Fatalf("fresh visitor is %v", body["user"])
	}
	b.as(&sam)
	if _, body := b.get("/me"); body["user"] != "sam" || body["staff"] != true {
		t.Fatalf("after login: %v", body)
	}
	if _, body := b.post("/login-and-read", "", nil); body["user"] != "root" {
		t.Errorf("same request after Login: %v", body)
	}
	if status, _ := b.post("/test/logout", "", nil); status != 204 {
		t.Fatalf("logout %d", status)
	}
	if _, body := b.get("/me"); body["user"] != nil {
		t.Errorf("after logout: %v", body)
	}
}

func TestLoginRefusesBadUsers(t *testing.T) {
	inst := newInstant(t, testConfig())
	b := newBrowser(t, newRouter(inst))
	for _, u := range []instant.User{{}, {ID: "a b"}, {ID: "1", Groups: []string{""}}, {ID: strings.Repeat("9", 300)}} {
		if status, body := b.postJSON("/test/login", u); status != 400 || !strings.Contains(body["error"].(string), "invalid user") {
			t.Errorf("Login(%+v): %d %v", u, status, body)
		}
	}
}

func TestLoginWithoutSessionsMiddleware(t *testing.T) {
	r := gin.New()
	var err error
	r.GET("/", func(c *gin.Context) { err = instant.Login(c, alice) })
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !errors.Is(err, instant.ErrNoSession) {
		t.Errorf("Login without sessions: %v", err)
	}
	r = gin.New()
	r.GET("/", func(c *gin.Context) { err = instant.Logout(c) })
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !errors.Is(err, instant.ErrNoSession) {
		t.Errorf("Logout without sessions: %v", err)
	}
}

func TestContextAccessors(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	var fromGin, fromReq, mustGet *instant.Instant
	var userFromReq, userFromGin *instant.User
	r.GET("/ctx", func(c *gin.Context) {
		fromGin = instant.Default(c)
		mustGet = c.MustGet("instant").(*instant.Instant)
		fromReq = instant.Default(c.Request.Context())
		userFromReq = instant.CurrentUser(c.Request.Context())
		userFromGin = instant.CurrentUser(c.Copy())
	})
	b := newBrowser(t, r).as(&gina)
	b.get("/ctx")
	if fromGin != inst || mustGet != inst || fromReq != inst {
		t.Errorf("Default %p, MustGet %p, FromContext %p; want %p", fromGin, mustGet, fromReq, inst)
	}
	if userFromReq == nil || userFromReq.ID != gina.ID || userFromGin == nil || userFromGin.ID != gina.ID {
		t.Errorf("UserFromContext: %v %v", userFromReq, userFromGin)
	}
	if instant.Default(context.Background()) != nil || instant.CurrentUser(context.Background()) != nil {
		t.Error("a bare context has an Instant")
	}
}

func TestRequireMiddlewares(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	r.GET("/staff", instant.RequireStaff(), func(c *gin.Context) { c.JSON(200, gin.H{}) })
	r.GET("/users", instant.RequireUser(), func(c *gin.Context) { c.JSON(200, gin.H{}) })
	cases := []struct {
		u            *instant.User
		staff, users int
	}{{nobody, 401, 401}, {&alice, 403, 200}, {&sam, 200, 200}, {&root, 200, 200}}
	for _, tc := range cases {
		b := newBrowser(t, r).as(tc.u)
		if got, _ := b.get("/staff"); got != tc.staff {
			t.Errorf("%v /staff: %d, want %d", tc.u, got, tc.staff)
		}
		if got, _ := b.get("/users"); got != tc.users {
			t.Errorf("%v /users: %d, want %d", tc.u, got, tc.users)
		}
	}
}

func TestSessionKeepsOtherValues(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(inst.Session())
	r.POST("/cart", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("cart", "3 apples")
		_ = s.Save()
		_ = instant.Login(c, alice)
		_ = instant.Logout(c)
		c.String(200, "%v", sessions.Default(c).Get("cart"))
	})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("POST", "/cart", nil))
	if w.Body.String() != "3 apples" {
		t.Errorf("cart %q", w.Body)
	}
}

func TestNilInstantMethodsReturnErrors(t *testing.T) {
	var inst *instant.Instant
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"}); !errors.Is(err, instant.ErrNotInstalled) {
		t.Errorf("Broadcast on nil: %v", err)
	}
	if _, err := inst.CentrifugoConfig(instant.CentrifugoOptions{}); !errors.Is(err, instant.ErrNotInstalled) {
		t.Errorf("CentrifugoConfig on nil: %v", err)
	}
	var nilGin *gin.Context // a nil *gin.Context, as a handler could hold
	if instant.Default(nilGin) != nil || instant.CurrentUser(nilGin) != nil || instant.Default(context.TODO()) != nil || instant.CurrentUser(context.TODO()) != nil {
		t.Error("nil context gave values")
	}
	allow := func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }
	if err := inst.Authorize("$a:*", allow); !errors.Is(err, instant.ErrNotInstalled) {
		t.Errorf("Authorize on nil: %v", err)
	}
	if _, err := inst.ConnectionToken(&alice); !errors.Is(err, instant.ErrNotInstalled) {
		t.Errorf("ConnectionToken on nil: %v", err)
	}
	if _, err := inst.SubscriptionToken(nil, &alice, "a"); !errors.Is(err, instant.ErrNotInstalled) {
		t.Errorf("SubscriptionToken on nil: %v", err)
	}
	if err := inst.Disconnect(context.Background(), "1"); !errors.Is(err, instant.ErrNotInstalled) {
		t.Errorf("Disconnect on nil: %v", err)
	}
	if inst.Allowed(nil, &root, "site_public") || inst.Channels() != nil || inst.WebsocketURL() != "" {
		t.Error("a nil Instant granted or listed something")
	}
}

func TestCurrentUserIsTheRequestsOwnCopy(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	r.GET("/promote", func(c *gin.Context) {
		u := instant.CurrentUser(c)
		u.Superuser = true // a handler changing its copy
		u.Groups[0] = "admins"
		u.Info["role"] = "root"
		c.Status(204)
	})
	rule := make(chan *instant.User, 1)
	_ = inst.Authorize("$room:{id}", func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
		u.Groups = append(u.Groups[:0], "admins") // a rule changing its copy
		rule <- u
		return true, nil
	})
	b := newBrowser(t, r).as(&instant.User{ID: "9", Groups: []string{"editors"}, Info: map[string]any{"role": "guest"}})
	for range 2 {
		b.get("/promote")
		b.postJSON("/instant/subscription_token", map[string]any{"channel": "$room:1"})
		<-rule
		for _, ch := range []string{"$site_admin", "$site_editors"} {
			status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": ch})
			want := map[string]int{"$site_admin": 403, "$site_editors": 200}[ch]
			if status != want {
				t.Fatalf("%s after a handler changed its copy: %d, want %d", ch, status, want)
			}
			if status == 200 {
				if info := parseToken(t, body["token"].(string))["info"].(map[string]any); info["role"] != "guest" {
					t.Fatalf("info changed by a handler: %v", info)
				}
			}
		}
	}
}

func TestUserFromContextAfterTheRequest(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	kept := make(chan context.Context, 2)
	r.GET("/asked", func(c *gin.Context) { instant.CurrentUser(c); kept <- c.Request.Context() })
	r.GET("/not-asked", func(c *gin.Context) { kept <- c.Request.Context() })
	b := newBrowser(t, r).as(&alice)
	b.get("/asked")
	if u := instant.CurrentUser(<-kept); u == nil || u.ID != alice.ID {
		t.Errorf("after a request that asked: %v", u)
	}
	b.get("/not-asked")
	ctx := <-kept
	newBrowser(t, r).as(&root).get("/asked") // gin reuses its contexts
	<-kept
	if u := instant.CurrentUser(ctx); u != nil {
		t.Errorf("after the request, a kept context found %v", u)
	}
}
