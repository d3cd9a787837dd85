package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// maxFormBytes bounds the body of the site's own POSTs.
const maxFormBytes = 64 << 10

// limitBody caps the request body, so that a huge form cannot fill memory.
func limitBody(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	c.Next()
}

// homeData is the home page's own data. The channels the visitor may read
// come from GET /instant/channels, read by app.js.
type homeData struct {
	// Denied are the configured channels the visitor may not read.
	Denied []instant.Channel
}

// home shows the live event list.
func (s *site) home(c *gin.Context) {
	user := instant.CurrentUser(c)
	var denied []instant.Channel
	for _, ch := range s.all {
		if !s.inst.Allowed(c, user, ch.Name) {
			denied = append(denied, ch)
		}
	}
	s.render(c, http.StatusOK, "home", "Live events", homeData{Denied: denied})
}

// loginData is the login page's own data.
type loginData struct {
	Accounts []account
	Username string
	Next     string
	Error    string
}

func (s *site) loginPage(c *gin.Context) {
	s.renderLogin(c, http.StatusOK, "", safeNext(c.Query("next")), "")
}

func (s *site) renderLogin(c *gin.Context, status int, username, next, msg string) {
	s.render(c, status, "login", "Log in", loginData{
		Accounts: s.users.accounts(),
		Username: username,
		Next:     next,
		Error:    msg,
	})
}

// login checks the form's username and password. On success it starts a
// login, whose ID the session keeps (see logins.go), and redirects (303) to the page asked for; on
// failure it shows the form again with 401 and sets no session. Over the
// throttle's limits (see loginThrottle) it answers 429 with Retry-After
// and checks no password.
func (s *site) login(c *gin.Context) {
	username := strings.TrimSpace(c.PostForm("username"))
	password := c.PostForm("password")
	next := safeNext(c.PostForm("next"))
	if username == "" || password == "" {
		s.renderLogin(c, http.StatusBadRequest, username, next, "Enter a username and a password.")
		return
	}
	if wait, ok := s.throttle.begin(username, clientAddress(c.Request.RemoteAddr)); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		c.Header("Retry-After", strconv.Itoa(secs))
		msg := fmt.Sprintf("Too many login attempts. Try again in %d seconds.", secs)
		if secs == 1 {
			msg = "Too many login attempts. Try again in a second."
		}
		s.renderLogin(c, http.StatusTooManyRequests, username, next, msg)
		return
	}
	u, err := s.users.authenticate(username, password)
	if err != nil {
		s.renderLogin(c, http.StatusUnauthorized, username, next, "Wrong username or password.")
		return
	}
	s.throttle.succeeded(username)
	if err := s.startLogin(c, u); err != nil {
		s.logger.Error("login: saving the session", "error", err)
		s.renderError(c, http.StatusInternalServerError, "Could not save the session.")
		return
	}
	c.Redirect(http.StatusSeeOther, next)
}

// logout ends the login: the server forgets it, so that a copy of the
// cookie no longer logs in; the session is emptied and its cookie expired.
// Then it closes the user's realtime connections, so that no open tab
// keeps reading their private channels; app.js then asks the site again
// what the tab may read and connects it again, anonymous. Centrifugo
// being down does not stop the logout.
func (s *site) logout(c *gin.Context) {
	u := instant.CurrentUser(c)
	if err := s.endLogin(c); err != nil {
		s.logger.Error("logout: saving the session", "error", err)
		s.renderError(c, http.StatusInternalServerError, "Could not save the session.")
		return
	}
	if u != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		if err := s.inst.Disconnect(ctx, u.ID); err != nil {
			s.logger.Warn("logout: could not disconnect the user's connections", "user", u.ID, "error", err)
		}
		cancel()
	}
	c.Redirect(http.StatusSeeOther, "/")
}

// safeNext keeps a redirect target only when it is a path on this site:
// it must start with "/" but not "//" (which browsers read as another
// host), hold no control character (browsers drop tabs and line breaks,
// so "/\t/evil.example" would become "//evil.example") and no backslash
// (browsers read "/\\evil.example" as "//evil.example" too), and parse as
// a URL without scheme or host whose path does not start with "//" either.
// Anything else gives "/".
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if b := next[i]; b < 0x20 || b == 0x7f || b == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}
