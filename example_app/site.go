package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// sessionName is the session cookie's name.
const sessionName = "instant_demo"

// demoConfig is the instant.Config of the demo: the default channels of
// the slug "site" plus a channel for each group, talking to the Centrifugo
// whose server API is apiURL, or, when apiURL is "", to no Centrifugo (the
// caller sets Server).
func demoConfig(apiURL string, s secrets) instant.Config {
	apiKey := s.APIKey
	if apiURL == "" {
		apiKey = "" // the embedded server's: no API, no key
	}
	return instant.Config{
		APIURL:        apiURL,
		APIKey:        apiKey,
		TokenSecret:   s.TokenSecret,
		SiteName:      "instant demo",
		SiteSlug:      "site",
		GroupChannels: map[string][]string{editorsGroup: {editorsChannel}, reviewersGroup: {reviewersChannel}},
	}
}

// siteConfig is what newSite needs.
type siteConfig struct {
	// Instant configures the plugin; see demoConfig. newSite sets its
	// LoadUser to the site's own (see logins.go) and, when empty, its
	// SiteOrigin to http://127.0.0.1:<Port>.
	Instant instant.Config
	// Port is the port the site is served on. Only requests for
	// 127.0.0.1, localhost or [::1] on this port are answered (see
	// checkHost).
	Port int
	// Secrets provide the session cookie keys.
	Secrets secrets
	// CentrifugeJS is the browser client (node_modules/centrifuge/dist/centrifuge.js).
	CentrifugeJS []byte
	// Accounts default to demoAccounts().
	Accounts []account
	// BcryptCost defaults to bcrypt.DefaultCost.
	BcryptCost int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// site is the demo web site. It is safe for concurrent use.
type site struct {
	inst     *instant.Instant
	users    *userStore
	pages    *pages
	logger   *slog.Logger
	recent   *recentLog
	logins   *loginRegistry
	throttle *loginThrottle
	adminMu  sync.Mutex        // one admin change at a time (see adminChange)
	all      []instant.Channel // every configured channel, widest level first
	clientJS staticFile
	handler  http.Handler
}

// newSite builds the site and its routes.
func newSite(cfg siteConfig) (*site, error) {
	if err := cfg.Secrets.check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Instant.Logger == nil {
		cfg.Instant.Logger = cfg.Logger
	}
	if cfg.Instant.SiteOrigin == "" { // for Check: Centrifugo must allow it
		cfg.Instant.SiteOrigin = "http://127.0.0.1:" + strconv.Itoa(cfg.Port)
	}
	if cfg.Accounts == nil {
		cfg.Accounts = demoAccounts()
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = defaultBcryptCost
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("the site's port %d is not in 1-65535", cfg.Port)
	}
	if len(cfg.CentrifugeJS) == 0 {
		return nil, errors.New("no centrifuge.js given")
	}
	s := &site{
		logger:   cfg.Logger,
		recent:   newRecentLog(recentLogSize),
		logins:   newLoginRegistry(sessionMaxAge, maxLoginsPerUser),
		throttle: newLoginThrottle(),
		clientJS: newStaticFile("centrifuge.js", cfg.CentrifugeJS),
	}
	// instant finds the user of a request through the site's logins.
	cfg.Instant.LoadUser = s.loadUser
	inst, err := instant.New(cfg.Instant)
	if err != nil {
		return nil, err
	}
	users, err := newUserStore(cfg.Accounts, cfg.BcryptCost)
	if err != nil {
		return nil, err
	}
	pg, err := parsePages()
	if err != nil {
		return nil, err
	}
	s.inst, s.users, s.pages, s.all = inst, users, pg, inst.Channels()
	s.handler = s.routes(cfg)
	return s, nil
}

// Handler returns the site's HTTP handler.
func (s *site) Handler() http.Handler { return s.handler }

func (s *site) routes(cfg siteConfig) http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(gin.CustomRecovery(func(c *gin.Context, err any) {
		s.logger.Error("panic serving a request", "path", c.Request.URL.Path, "panic", err)
		c.AbortWithStatus(http.StatusInternalServerError)
	}))
	r.Use(securityHeaders(websocketOrigin(s.inst)), checkHost(cfg.Port))

	hashKey, blockKey := cfg.Secrets.cookieKeys()
	store := cookie.NewStore(hashKey, blockKey)
	store.Options(sessionOptions(int(sessionMaxAge.Seconds())))
	r.Use(sessions.Sessions(sessionName, store), s.inst.Session())

	// The plugin's token routes. They check the origin themselves.
	s.inst.Register(r.Group("/instant"))

	// The site's own pages. Every POST must come from the site's own
	// pages: a cross-origin form post (CSRF) is refused. What answers GET
	// answers HEAD too (net/http sends no body to HEAD).
	pagesGroup := r.Group("/", sameOrigin(s), limitBody)
	getAndHead(pagesGroup, "/", s.home)
	getAndHead(pagesGroup, "/login", s.loginPage)
	pagesGroup.POST("/login", s.login)
	pagesGroup.POST("/logout", s.logout)
	staff := pagesGroup.Group("/broadcast", s.requireUser((*instant.User).IsStaff, "Only staff users and superusers may broadcast."))
	getAndHead(staff, "", s.broadcastPage)
	staff.POST("", s.broadcast)
	admin := pagesGroup.Group("/admin", s.requireUser(isSuperuser, "Only superusers may change users."))
	getAndHead(admin, "", s.adminPage)
	admin.POST("/staff", s.adminSetStaff)
	admin.POST("/group", s.adminSetGroup)

	static := r.Group("/static")
	getAndHead(static, "/centrifuge.js", s.clientJS.serve)
	for _, f := range ownStaticFiles() {
		getAndHead(static, "/"+f.name, f.serve)
	}
	r.NoRoute(func(c *gin.Context) {
		s.renderError(c, http.StatusNotFound, "There is no page at this address.")
	})
	return r
}

// getAndHead routes GET and HEAD requests for path to h.
func getAndHead(g gin.IRoutes, path string, h ...gin.HandlerFunc) {
	g.GET(path, h...)
	g.HEAD(path, h...)
}

// checkHost answers 421 Misdirected Request to a request whose Host is
// not 127.0.0.1, localhost or [::1] on the site's port. A page of another
// site whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own
// name in Host (evil.example:8080); without this check it would pass the
// same-origin checks, which compare Origin with Host, and read the
// visitor's pages and tokens.
func checkHost(port int) gin.HandlerFunc {
	p := strconv.Itoa(port)
	allowed := map[string]bool{"127.0.0.1:" + p: true, "localhost:" + p: true, "[::1]:" + p: true}
	if port == 80 { // browsers leave out the default port
		allowed["127.0.0.1"], allowed["localhost"], allowed["[::1]"] = true, true, true
	}
	msg := []byte("421 Misdirected Request: this site answers only at http://127.0.0.1:" + p +
		"/, http://localhost:" + p + "/ and http://[::1]:" + p + "/.\n")
	return func(c *gin.Context) {
		if !allowed[strings.ToLower(c.Request.Host)] {
			c.Header("Cache-Control", "no-store")
			c.Data(http.StatusMisdirectedRequest, "text/plain; charset=utf-8", msg)
			c.Abort()
			return
		}
		c.Next()
	}
}

// websocketOrigin is the origin of the websocket URL the browsers connect
// to, for the Content-Security-Policy.
func websocketOrigin(inst *instant.Instant) string {
	u, err := url.Parse(inst.WebsocketURL())
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// securityHeaders sets the headers every answer carries. Scripts and
// styles come only from the site itself; the page may open websockets to
// Centrifugo (wsOrigin).
func securityHeaders(wsOrigin string) gin.HandlerFunc {
	csp := "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self' " + wsOrigin + "; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		c.Next()
	}
}

// sameOrigin refuses cross-origin POSTs (CSRF) with net/http's
// CrossOriginProtection: browsers say where a request comes from in
// Sec-Fetch-Site or Origin.
func sameOrigin(s *site) gin.HandlerFunc {
	cop := http.NewCrossOriginProtection()
	return func(c *gin.Context) {
		if err := cop.Check(c.Request); err != nil {
			s.respondError(c, http.StatusForbidden, "This form was sent from another site, so it was refused.")
			return
		}
		c.Next()
	}
}

// requireUser lets the users that allowed accepts through; it sends an
// anonymous visitor to the login page and answers 403 with refusal to
// other users.
func (s *site) requireUser(allowed func(*instant.User) bool, refusal string) gin.HandlerFunc {
	return func(c *gin.Context) {
		u := instant.CurrentUser(c)
		switch {
		case u == nil:
			if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
				c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
				c.Abort()
				return
			}
			s.respondError(c, http.StatusUnauthorized, "Log in first.")
		case !allowed(u):
			s.respondError(c, http.StatusForbidden, refusal)
		default:
			c.Next()
		}
	}
}

// isSuperuser reports whether u, not nil, is a superuser.
func isSuperuser(u *instant.User) bool { return u.Superuser }

// staticFile is a file served from memory with an ETag.
type staticFile struct {
	name, contentType string
	body              []byte
	etag              string
	modTime           time.Time
}

func newStaticFile(name string, body []byte) staticFile {
	sum := sha256.Sum256(body)
	ct := "application/octet-stream"
	switch {
	case strings.HasSuffix(name, ".js"):
		ct = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		ct = "text/css; charset=utf-8"
	}
	return staticFile{name: name, contentType: ct, body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, modTime: time.Now()}
}

func (f staticFile) serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(c.Writer, c.Request, f.name, f.modTime, bytes.NewReader(f.body))
}

// describeUser is the user's name and role, for the page header.
func describeUser(u *instant.User) string {
	switch {
	case u == nil:
		return "anonymous"
	case u.Superuser:
		return u.Username + " (superuser)"
	case u.Staff:
		return u.Username + " (staff)"
	case len(u.Groups) > 0:
		return u.Username + " (" + strings.Join(u.Groups, ", ") + ")"
	default:
		return u.Username + " (plain user)"
	}
}
