package instant

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
)

// Limits of the token routes.
const (
	// maxBodyBytes is the largest request body a POST route reads.
	maxBodyBytes = 64 << 10
	// maxBatchChannels is the most channels one auth request may name.
	maxBatchChannels = 100
)

// handler is a route of the plugin: it gets the Instant, the request and,
// for a POST, the body that passed readPost's checks.
type handler func(i *Instant, c *gin.Context, body []byte)

// routes is every route Register mounts, relative to the group. A request
// runs route → request state → decision → token → answer.
var routes = []struct {
	method, path string
	handle       handler
	sessionless  bool // serves no user: needs no request state
}{
	{http.MethodPost, "connection_token", (*Instant).connectionTokenRoute, false},
	{http.MethodPost, "subscription_token", (*Instant).subscriptionTokenRoute, false},
	{http.MethodPost, "auth", (*Instant).authRoute, false},
	{http.MethodPost, "presence", (*Instant).presenceRoute, false},
	{http.MethodGet, "channels", (*Instant).channelsRoute, false},
	{http.MethodGet, "client.js", (*Instant).clientJSRoute, true},
	{http.MethodPost, routeProxyConnect, (*Instant).proxyConnect, false},
	{http.MethodPost, routeProxyRefresh, (*Instant).proxyRefresh, false},
	{http.MethodPost, routeProxySubscribe, (*Instant).proxySubscribe, false},
	{http.MethodPost, routeProxySubRefresh, (*Instant).proxySubRefresh, false},
}

// Register mounts the token routes on g:
//
//	POST connection_token    {}                      → {"token","expires_at"}
//	POST subscription_token  {"channel"}             → {"token","expires_at"} or 403
//	POST auth                {"client","channels"}   → {"channels":[{"channel","token","expires_at"} or {"channel","status":403}]}
//	     with "connection":true                      → the same and "connection":{"token","expires_at"}
//	POST presence            {"channels"}            → {"channels":[{"channel","clients":[{"client","user","info"}],"total","truncated"} or {"channel","status":403}]}
//	GET  channels                                    → {"user","channels":[{"name","level"}],"websocket_url","origin"}
//	GET  client.js                                   → the browser helper, an ES module
//	GET  connection/websocket                        → with Config.Server: its websocket
//
// and the Centrifugo proxy routes (see proxy.go). With Config.Server (the
// embedded server), the channels route's "websocket_url" is the path of
// connection/websocket in this group ("/instant/connection/websocket"),
// which browsers resolve against the page; else Config.WebsocketURL. The presence route lists
// the logged-in subscribers of at most 20 channels, each with the info its
// token carries for the channel, and answers only private channels the
// user may read: a public channel, any channel to an anonymous visitor, or
// one the user may not read is a 403 of its own; a failure of Centrifugo
// is a 502 or 503. Its answer is bounded: at most 100 subscriptions a
// channel (the first by user ID, then client) and 256 KiB of them in the
// whole answer; "total" counts a channel's logged-in subscriptions
// (omitted when none), and "truncated": true says its list was cut. It is
// the only way a browser learns who is there (CentrifugoOptions.Presence).
//
// POST routes take a JSON body of at most 64 KiB and refuse cross-origin
// requests (see TrustedOrigins).
// Every client fault gets a 4xx answer {"error": "..."}: 405 with an
// Allow header for a wrong method, 404 for a name that is no route.
//
// Give Register a group of its own (r.Group("/instant")): it mounts two
// paths there, /:route and /proxy/:kind, for every method (18 routes),
// and finds the endpoint itself. The app's own static routes in the
// group still win; a parameter route of the app's at the same level would
// clash.
//
// The routes need sessions.Sessions (gin-contrib/sessions) before them: a
// request without it gets a 500 naming it and one log line. They do not
// need Session: where Session did not run for this Instant, each route
// records the request's state itself and reads the user as Session would
// (Config.LoadUser, or the session value Login wrote). Session is what the
// app's own handlers need for CurrentUser, Default and the Require
// middlewares.
func (i *Instant) Register(g *gin.RouterGroup) {
	register(g, func() (*Instant, error) {
		if i == nil {
			return nil, ErrNotInstalled
		}
		return i, nil
	})
	if i != nil && i.server != nil {
		// The embedded server's websocket: a GET that upgrades, on a
		// path of two segments, so it does not meet /:route.
		g.GET("/"+websocketPath, gin.WrapH(i.server.Handler()))
	}
}

// websocketPath is where Register serves a Server's websocket, in the
// group.
const websocketPath = "connection/websocket"

// Register is the package-level form: inst.Register(g) of the package
// default Instant that Session (the package-level one) describes. It
// panics, at startup, when the environment does not configure it.
func Register(g *gin.RouterGroup) { packageDefault().Register(g) }

func register(g *gin.RouterGroup, resolve func() (*Instant, error)) {
	byPath := make(map[string]int, len(routes))
	for k, r := range routes {
		byPath[r.path] = k
	}
	dispatch := func(c *gin.Context, path string) {
		k, ok := byPath[path]
		if !ok {
			abortJSON(c, http.StatusNotFound, "instant: no such route")
			return
		}
		r := &routes[k]
		if m := c.Request.Method; m != r.method && (r.method != http.MethodGet || m != http.MethodHead) {
			allow := r.method
			if allow == http.MethodGet {
				allow = "GET, HEAD"
			}
			c.Header("Allow", allow)
			abortJSON(c, http.StatusMethodNotAllowed, "instant: method not allowed, use "+r.method)
			return
		}
		i, err := resolve()
		if err != nil {
			failServer(c, nil, err)
			return
		}
		if st, _ := stateOfGin(c); !r.sessionless && (st == nil || st.inst != i) {
			// Session did not run (or ran for another Instant): the
			// route records its own request state.
			if _, ok := c.Get(sessions.DefaultKey); !ok {
				failServer(c, i, ErrNoSession)
				return
			}
			defer i.begin(c).finish()
		}
		var body []byte
		if c.Request.Method == http.MethodPost {
			if body, ok = i.readPost(c); !ok {
				return
			}
		}
		r.handle(i, c, body)
	}
	// Two paths, every method each (18 routes in all, whatever the number
	// of endpoints): the handler finds the endpoint and answers 405 to a
	// method it does not take, 404 to a name that is none.
	g.Any("/:route", func(c *gin.Context) { dispatch(c, c.Param("route")) })
	g.Any("/proxy/:kind", func(c *gin.Context) { dispatch(c, "proxy/"+c.Param("kind")) })
}

// readPost applies the checks every POST route shares: same origin, JSON
// content type, at most maxBodyBytes of valid UTF-8. On failure it has
// answered and returns false.
func (i *Instant) readPost(c *gin.Context) ([]byte, bool) {
	r := c.Request
	if err := i.cop.Check(r); err != nil {
		abortJSON(c, http.StatusForbidden, "instant: cross-origin request refused")
		return nil, false
	}
	if !isJSONType(r.Header.Get("Content-Type")) {
		abortJSON(c, http.StatusUnsupportedMediaType, "instant: content type must be application/json")
		return nil, false
	}
	if r.ContentLength > maxBodyBytes {
		abortJSON(c, http.StatusRequestEntityTooLarge, "instant: body larger than 64 KiB")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			abortJSON(c, http.StatusRequestEntityTooLarge, "instant: body larger than 64 KiB")
		} else {
			abortJSON(c, http.StatusBadRequest, "instant: could not read the body")
		}
		return nil, false
	}
	if !utf8.Valid(body) {
		abortJSON(c, http.StatusBadRequest, "instant: body is not valid UTF-8")
		return nil, false
	}
	return body, true
}

func isJSONType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "application/json")
}

// decodeBody decodes a JSON object; an empty body decodes as {} (the
// routes then ask for what is missing). On failure it has answered 400.
func decodeBody(c *gin.Context, body []byte, v any) bool {
	if len(body) == 0 {
		return true
	}
	if body[0] != '{' {
		if trimmed := strings.TrimSpace(string(body)); trimmed == "" || trimmed[0] != '{' {
			abortJSON(c, http.StatusBadRequest, "instant: body must be a JSON object")
			return false
		}
	}
	if err := json.Unmarshal(body, v); err != nil {
		abortJSON(c, http.StatusBadRequest, "instant: malformed JSON body")
		return false
	}
	return true
}

// connectingUser is the request's user for a route that serves a
// connection (its token, the channels list, presence), which an anonymous
// visitor may not have under DisallowAnonymous. On failure it has answered.
func (i *Instant) connectingUser(c *gin.Context) (*User, bool) {
	u, ok := requestUser(c, false)
	if !ok {
		return nil, false
	}
	if err := i.mayConnect(u); err != nil {
		i.refuse(c, err)
		return nil, false
	}
	return u, true
}

func (i *Instant) connectionTokenRoute(c *gin.Context, body []byte) {
	var req struct{}
	if !decodeBody(c, body, &req) {
		return
	}
	u, ok := i.connectingUser(c)
	if !ok {
		return
	}
	tok, err := i.signConnection(u)
	i.answerToken(c, tok, err)
}

func (i *Instant) subscriptionTokenRoute(c *gin.Context, body []byte) {
	var req struct {
		Channel string `json:"channel"`
	}
	if !decodeBody(c, body, &req) {
		return
	}
	u, ok := requestUser(c, false)
	if !ok {
		return
	}
	info, err := i.decide(c, u, req.Channel)
	if err != nil {
		i.refuse(c, err)
		return
	}
	tok, err := i.signSubscription(u, req.Channel, info)
	i.answerToken(c, tok, err)
}

// authAnswer is one channel of the auth route's answer.
type authAnswer struct {
	Channel   string `json:"channel"`
	Token     string `json:"token,omitempty"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
	Status    int    `json:"status,omitempty"`
}

// authResponse is the auth route's answer. Connection is there only when
// the request asked for it ("connection": true).
type authResponse struct {
	Channels   []authAnswer   `json:"channels"`
	Connection *tokenResponse `json:"connection,omitempty"`
}

// authRoute signs a batch: the subscription tokens of the channels named
// and, with "connection": true, a connection token too, so that a page
// connects and subscribes with one request (client.js does). A refused
// channel gets its own status (403, or 500 for a rule that panicked); a
// name that is not a channel, or an anonymous visitor when they are
// refused, fails the whole batch. With a connection asked for, the
// channels may be none.
func (i *Instant) authRoute(c *gin.Context, body []byte) {
	var req struct {
		Client     string   `json:"client"`
		Channels   []string `json:"channels"`
		Connection bool     `json:"connection"`
	}
	if !decodeBody(c, body, &req) {
		return
	}
	switch {
	case len(req.Channels) == 0 && !req.Connection:
		abortJSON(c, http.StatusBadRequest, "instant: no channels")
		return
	case len(req.Channels) > maxBatchChannels:
		abortJSON(c, http.StatusBadRequest, "instant: at most 100 channels a batch")
		return
	case req.Client != "" && checkName(req.Client, "client") != nil:
		abortJSON(c, http.StatusBadRequest, "instant: invalid client")
		return
	}
	u, ok := requestUser(c, false)
	if !ok {
		return
	}
	var conn *tokenResponse
	if req.Connection {
		if err := i.mayConnect(u); err != nil {
			i.refuse(c, err)
			return
		}
		tok, err := i.signConnection(u)
		if err != nil {
			i.answerToken(c, tok, err)
			return
		}
		conn = &tokenResponse{Token: tok.Token, ExpiresAt: tok.ExpiresAt.Unix()}
	}
	out := make([]authAnswer, len(req.Channels))
	for k, ch := range req.Channels {
		out[k].Channel = ch
		info, err := i.decide(c, u, ch)
		if status := errorStatus(err); err != nil && (status == http.StatusBadRequest || status == http.StatusUnauthorized) {
			i.refuse(c, err)
			return
		} else if err != nil {
			out[k].Status = status
			continue
		}
		tok, err := i.signSubscription(u, ch, info)
		if err != nil {
			i.answerToken(c, tok, err)
			return
		}
		out[k].Token, out[k].ExpiresAt = tok.Token, tok.ExpiresAt.Unix()
	}
	c.JSON(http.StatusOK, authResponse{Channels: out, Connection: conn})
}

// listedChannel is a channel as the channels route lists it:
// {"name", "level" (its String: "public", "users", ...), "group"}.
type listedChannel struct {
	Name  string `json:"name"`
	Level string `json:"level"`
	Group string `json:"group,omitempty"`
}

func (i *Instant) channelsRoute(c *gin.Context, _ []byte) {
	u, ok := i.connectingUser(c)
	if !ok {
		return
	}
	chans := i.channelsFor(u)
	listed := make([]listedChannel, len(chans))
	for k, ch := range chans {
		listed[k] = listedChannel{Name: ch.Name, Level: ch.Level.String(), Group: ch.Group}
	}
	ws := i.cfg.WebsocketURL
	if i.server != nil && ws == "" {
		// The group's path: a browser resolves it against the page, so no
		// host or scheme needs configuring.
		ws = path.Join(path.Dir(c.Request.URL.Path), websocketPath)
	}
	c.JSON(http.StatusOK, gin.H{
		"user":          u,
		"channels":      listed,
		"websocket_url": ws,
		// A new origin id for the asking tab, bound to u (see Origin).
		"origin": i.mintOrigin(u),
	})
}
