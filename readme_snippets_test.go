package instant_test

import (
	"context"
	"fmt"
	"os"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// The README's Go blocks, compiled here (TestREADMECodeBlocks checks that
// each block is in a compiled file; the five steps' block is in
// example_app/minimal).

func readmeSetup(r *gin.Engine, store sessions.Store, inst *instant.Instant) {
	r.Use(sessions.Sessions("app", store)) // gin-contrib/sessions, any store
	r.Use(instant.Session())               // the session user goes into the request
	instant.Register(r.Group("/instant"))  // the routes the browser calls for tokens
}

func readmeHandler(c *gin.Context) error {
	err := instant.Default(c).Broadcast(c, instant.Event{Channel: "$site_staff", Message: "New order"})
	return err
}

func readmeRules(inst *instant.Instant) {
	inst.Authorize("$orders:{user}", func(c *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && p["user"] == u.ID, nil // a user reads their own orders
	})
	inst.Authorize("$project-{id}", func(c *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		if u == nil || !u.InGroup("project-"+p["id"]) {
			return false, nil
		}
		return true, map[string]any{"nick": u.Username} // what the channel's other members see of u
	})
}

func readmeEvent(ctx context.Context, c *gin.Context, inst *instant.Instant) {
	inst.Broadcast(ctx, instant.Event{
		Channel:    "$site_staff", // or Channels, Users (personal channels), or Target: a level's first channel
		Message:    "New order",
		EventClass: "order.created",         // default "default"
		Data:       map[string]any{"id": 7}, // any JSON value
		Origin:     instant.Origin(c),       // the tab that caused it does not get it back
	})
}

// readmeStore stands for the app's own user store.
type readmeStore struct{ staff map[string]bool }

func (s *readmeStore) SetStaff(id string, staff bool) { s.staff[id] = staff }

// User stands for the store's look-up: nil, nil for no such user.
func (s *readmeStore) User(c *gin.Context, id string) (*instant.User, error) {
	if id == "" {
		return nil, nil
	}
	return &instant.User{ID: id, Staff: s.staff[id]}, nil
}

func readmeReauthorize(ctx context.Context, cfg instant.Config, inst *instant.Instant, store *readmeStore, userID string, newUser instant.User) error {
	cfg.LoadUser = func(c *gin.Context) (*instant.User, error) {
		id, _ := sessions.Default(c).Get("uid").(string)
		return store.User(c, id) // nil, nil for a visitor who is not logged in
	}
	// ... when an admin changes a user:
	store.SetStaff(userID, false)         // your own data first
	err := inst.Reauthorize(ctx, newUser) // the user as the store now holds them
	return err
}

// readmeNodes writes one Centrifugo config per node ("Several replicas
// and nodes").
func readmeNodes(inst *instant.Instant) error {
	for _, port := range []int{8000, 8001} {
		conf, err := inst.CentrifugoConfig(instant.CentrifugoOptions{
			Port:           port,
			RedisAddress:   "redis://127.0.0.1:6379", // the same for every node
			AllowedOrigins: []string{"https://app.example.com"},
		})
		if err != nil {
			return err
		}
		if err := os.WriteFile(fmt.Sprintf("node-%d.json", port), conf, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Referenced, so that the linters see them used.
var _ = []any{readmeSetup, readmeHandler, readmeRules, readmeEvent, readmeReauthorize, readmeNodes}
