package main

// The admin page: a superuser promotes, demotes or moves a demo user
// between groups. Each change goes to the user store first, then to
// inst.Reauthorize with the user as the store now holds them. Since the
// site finds its users through Config.LoadUser (logins.go), which reads
// the store, the routes decide with the new roles from the next request
// on; Reauthorize ends the user's open subscriptions to the channels they
// may no longer read and tells their open pages to ask for their channels
// again, so new channels appear there without a reload.

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// reauthorizeTimeout bounds an admin change's wait for Centrifugo.
const reauthorizeTimeout = 5 * time.Second

// adminData is the admin page's own data.
type adminData struct {
	Users   []account // as they are now
	Groups  []string
	Changed string // what the last change did
	Error   string
}

func (s *site) adminPage(c *gin.Context) { s.renderAdmin(c, http.StatusOK, "", "") }

func (s *site) renderAdmin(c *gin.Context, status int, changed, msg string) {
	s.render(c, status, "admin", "Admin", adminData{
		Users:   s.users.accounts(),
		Groups:  demoGroups,
		Changed: changed,
		Error:   msg,
	})
}

// adminSetStaff promotes (staff=true) or demotes (staff=false) the user
// named by the form's username.
func (s *site) adminSetStaff(c *gin.Context) {
	var staff bool
	switch c.PostForm("staff") {
	case "true":
		staff = true
	case "false":
	default:
		s.adminFailed(c, http.StatusBadRequest, "Say staff=true or staff=false.")
		return
	}
	username := c.PostForm("username")
	s.adminChange(c, func() (instant.User, error) { return s.users.setStaff(username, staff) })
}

// adminSetGroup moves the user named by the form's username into the
// form's group, out of any other; an empty group leaves them in none.
func (s *site) adminSetGroup(c *gin.Context) {
	username, group := c.PostForm("username"), c.PostForm("group")
	s.adminChange(c, func() (instant.User, error) { return s.users.setGroup(username, group) })
}

// adminChange changes the store with change, which returns the user as
// they are now, and then calls Reauthorize with that user. One change at
// a time: two admins changing one user at once would otherwise call
// Reauthorize in the other order, the last with the roles the store no
// longer holds.
func (s *site) adminChange(c *gin.Context, change func() (instant.User, error)) {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	u, err := change()
	if err != nil { // nothing changed
		msg := err.Error()
		s.adminFailed(c, http.StatusBadRequest, strings.ToUpper(msg[:1])+msg[1:]+".")
		return
	}
	done := u.Username + " is now " + roleOf(u) + "."
	ctx, cancel := context.WithTimeout(c.Request.Context(), reauthorizeTimeout)
	defer cancel()
	if err := s.inst.Reauthorize(ctx, u); err != nil {
		s.logger.Warn("admin: Reauthorize failed", "user", u.ID, "error", err)
		s.adminFailed(c, http.StatusBadGateway, done+" The site's pages already follow, but Centrifugo did not answer:"+
			" their open pages keep their channels until they next ask for a token.")
		return
	}
	if wantsJSON(c) {
		c.JSON(http.StatusOK, gin.H{"username": u.Username, "role": roleOf(u)})
		return
	}
	s.renderAdmin(c, http.StatusOK, done+" Their open pages follow now.", "")
}

// adminFailed answers a change that failed: JSON to scripts, the admin
// page with the message to browsers.
func (s *site) adminFailed(c *gin.Context, status int, msg string) {
	if wantsJSON(c) {
		c.AbortWithStatusJSON(status, gin.H{"error": msg})
		return
	}
	s.renderAdmin(c, status, "", msg)
}
