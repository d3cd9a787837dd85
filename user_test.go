package instant_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// TestUserCopiesAreDeep: a handler that edits the maps nested in its copy
// of Info changes nothing for the next token, another browser's token or
// the process-wide cache (run with -race: concurrent requests share it).
func TestUserCopiesAreDeep(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	r.GET("/edit", func(c *gin.Context) {
		u := instant.CurrentUser(c)
		profile := u.Info["profile"].(map[string]any)
		profile["role"] = "root"
		profile["tags"].([]any)[0] = "admin"
		c.Status(204)
	})
	guest := instant.User{ID: "9", Info: map[string]any{"profile": map[string]any{"role": "guest", "tags": []any{"new"}}}}
	editor, reader := newBrowser(t, r).as(&guest), newBrowser(t, r).as(&guest)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() { defer wg.Done(); editor.tryGet("/edit") }()
		go func() {
			defer wg.Done()
			reader.tryPostJSON("/instant/subscription_token", map[string]any{"channel": "$site_users"})
		}()
	}
	wg.Wait()
	for _, b := range []*browser{editor, reader} {
		// User.Info rides in a private channel's subscription token.
		status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "$site_users"})
		if status != 200 {
			t.Fatalf("subscription_token %d", status)
		}
		profile := parseToken(t, body["token"].(string))["info"].(map[string]any)["profile"].(map[string]any)
		if profile["role"] != "guest" || profile["tags"].([]any)[0] != "new" {
			t.Errorf("a handler's edit of its copy reached a token: %v", profile)
		}
	}
}

// TestLoadUserResultIsCopied: LoadUser may keep the user it returned and
// change it later; the request's user does not change with it.
func TestLoadUserResultIsCopied(t *testing.T) {
	shared := &instant.User{ID: "3", Info: map[string]any{"name": "sam"}}
	cfg := testConfig()
	cfg.LoadUser = func(*gin.Context) (*instant.User, error) { return shared, nil }
	r := newRouter(newInstant(t, cfg))
	r.GET("/me", func(c *gin.Context) {
		_ = instant.CurrentUser(c)
		shared.Info["name"] = "mallory" // LoadUser's code changes its value
		shared.Staff = true
		u := instant.CurrentUser(c)
		c.JSON(200, gin.H{"name": u.Info["name"], "staff": u.Staff})
	})
	_, body := newBrowser(t, r).get("/me")
	if body["name"] != "sam" || body["staff"] != false {
		t.Errorf("the request's user followed LoadUser's value: %v", body)
	}
}

// exactInfo holds integers above 2^53, which a float64 rounds
// (9007199254740993 became 9007199254740992 on the Login and LoadUser
// paths), and a decimal that must keep its digits.
var exactInfo = map[string]any{
	"n":       json.Number("9007199254740993"),
	"u":       uint64(18446744073709551615),
	"i":       int64(-9007199254740993),
	"nested":  map[string]any{"ids": []any{uint64(9007199254740995)}},
	"decimal": json.Number("0.1000000000000000055511151231257827"),
}

// exactDigits are the digits exactInfo must keep, as JSON text.
var exactDigits = []string{`"n":9007199254740993`, `"u":18446744073709551615`, `"i":-9007199254740993`, `"ids":[9007199254740995]`, `"decimal":0.1000000000000000055511151231257827`}

// rawGet returns the raw body of a GET, undecoded: a decoder into float64
// would round what the test looks at.
func rawGet(t *testing.T, b *browser, path string) []byte {
	t.Helper()
	resp, err := b.c.Get(b.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	return raw
}

// tokenPayload returns the claims of a token the routes gave, as JSON
// text, after checking its signature.
func tokenPayload(t *testing.T, b *browser, path string, body any) []byte {
	t.Helper()
	status, resp := b.postJSON(path, body)
	if status != http.StatusOK {
		t.Fatalf("%s: %d %v", path, status, resp)
	}
	tok := resp["token"].(string)
	parseToken(t, tok)
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

func checkExact(t *testing.T, where string, raw []byte) {
	t.Helper()
	compact := new(bytes.Buffer)
	if err := json.Compact(compact, raw); err != nil {
		t.Fatalf("%s: not JSON: %s", where, raw)
	}
	for _, d := range exactDigits {
		if !strings.Contains(compact.String(), d) {
			t.Errorf("%s lost %s: %s", where, d, compact)
		}
	}
}

// TestInfoNumbersStayExact: integers above 2^53 in User.Info reach GET
// channels, the subscription token's info claim and the app's own
// CurrentUser digit for digit, on the Login path and on the LoadUser path.
func TestInfoNumbersStayExact(t *testing.T) {
	u := instant.User{ID: "9", Username: "big", Info: exactInfo}
	mount := func(r *gin.Engine) *gin.Engine {
		r.POST("/test/login-exact", func(c *gin.Context) {
			if err := instant.Login(c, u); err != nil {
				c.AbortWithStatus(http.StatusInternalServerError)
				return
			}
			// The rest of this request sees the exact numbers too.
			if n, _ := instant.CurrentUser(c).Info["n"].(json.Number); n != "9007199254740993" {
				c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"n": n})
				return
			}
			c.Status(http.StatusNoContent)
		})
		r.GET("/test/me", func(c *gin.Context) { c.JSON(http.StatusOK, instant.CurrentUser(c)) })
		return r
	}

	t.Run("Login", func(t *testing.T) {
		b := newBrowser(t, mount(newRouter(newInstant(t, testConfig()))))
		if status, body := b.postJSON("/test/login-exact", map[string]any{}); status != http.StatusNoContent {
			t.Fatalf("login: %d %v", status, body)
		}
		checkExact(t, "GET channels", rawGet(t, b, "/instant/channels"))
		checkExact(t, "CurrentUser", rawGet(t, b, "/test/me"))
		checkExact(t, "the subscription token", tokenPayload(t, b, "/instant/subscription_token", map[string]any{"channel": "$site_users"}))
	})
	t.Run("LoadUser", func(t *testing.T) {
		cfg := testConfig()
		cfg.LoadUser = func(*gin.Context) (*instant.User, error) { return &u, nil }
		b := newBrowser(t, mount(newRouter(newInstant(t, cfg))))
		checkExact(t, "GET channels", rawGet(t, b, "/instant/channels"))
		checkExact(t, "CurrentUser", rawGet(t, b, "/test/me"))
		checkExact(t, "the subscription token", tokenPayload(t, b, "/instant/subscription_token", map[string]any{"channel": "$site_users"}))
	})
}
