package instant_test

import (
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
