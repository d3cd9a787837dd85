package instant

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

const (
	maxBodyBytes     = 64 << 10 // the largest body a POST route reads
	maxBatchChannels = 100      // the most channels one auth request names
)

// websocketPath is where Register serves a Server's websocket, in the group.
const websocketPath = "connection/websocket"

// routes is every endpoint Register serves, by its path in the group.
// A sessionless route serves no user and needs no request state.
var routes = map[string]struct {
	method      string
	handle      func(i *Instant, c *gin.Context, body []byte)
	sessionless bool
}{
	"connection_token":   {http.MethodPost, (*Instant).connectionTokenRoute, false},
	"subscription_token": {http.MethodPost, (*Instant).subscriptionTokenRoute, false},
	"auth":               {http.MethodPost, (*Instant).authRoute, false},
	"presence":           {http.MethodPost, (*Instant).presenceRoute, false},
	"channels":           {http.MethodGet, (*Instant).channelsRoute, false},
	"client.js":          {http.MethodGet, (*Instant).clientJSRoute, true},
	routeProxyConnect:    {http.MethodPost, (*Instant).proxyRoute, false},
	routeProxyRefresh:    {http.MethodPost, (*Instant).proxyRoute, false},
	routeProxySubscribe:  {http.MethodPost, (*Instant).proxyRoute, false},
	routeProxySubRefresh: {http.MethodPost, (*Instant).proxyRoute, false},
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
// and Centrifugo's proxy routes under proxy/ (see CentrifugoConfig). With
// Config.Server and no WebsocketURL, "websocket_url" is the group's
// connection/websocket path. Auth takes at most 100 channels: a refused
// one gets its own status; a bad name, or an anonymous visitor refused,
// fails the batch. Presence answers at most 20 channels, each private and
// readable by the logged-in user (else a 403 of its own), with at most 100
// subscriptions a channel (by user, then client) and 256 KiB in all:
// "total" counts them, "truncated" says a list was cut; the server failing
// is a 502, or a 503 when it refused (presence off).
//
// POST routes take a JSON body of at most 64 KiB and refuse cross-origin
// requests (see TrustedOrigins). A client fault is a 4xx {"error": "..."}:
// 405 with an Allow header for a wrong method, 404 for no such route.
// Two paths, /:route and /proxy/:kind, for every method (18 routes, each
// wrong method answered): give Register a group of its own, where the
// app's own static routes still win. The routes need sessions.Sessions
// before them (a 500 naming it); without Session they record the
// request's state themselves.
func (i *Instant) Register(g *gin.RouterGroup) {
	var serve gin.HandlerFunc
	serve = func(c *gin.Context) {
		name := c.Param("route")
		if name == "" {
			name = "proxy/" + c.Param("kind")
		}
		r, ok := routes[name]
		if !ok {
			abortJSON(c, http.StatusNotFound, "instant: no such route")
			return
		}
		if m := c.Request.Method; m != r.method && (r.method != http.MethodGet || m != http.MethodHead) {
			allow := r.method
			if allow == http.MethodGet {
				allow = "GET, HEAD"
			}
			c.Header("Allow", allow)
			abortJSON(c, http.StatusMethodNotAllowed, "instant: method not allowed, use "+r.method)
			return
		}
		if i == nil {
			failServer(c, nil, ErrNotInstalled)
			return
		}
		if st, _, _ := stateOf(c, false); !r.sessionless && (st == nil || st.inst != i) {
			i.track(c, func() { serve(c) }) // again, with the state recorded
			return
		}
		var body []byte
		if r.method == http.MethodPost {
			req := c.Request
			ct, _, _ := strings.Cut(req.Header.Get("Content-Type"), ";")
			var err error
			switch {
			case i.cop.Check(req) != nil:
				abortJSON(c, http.StatusForbidden, "instant: cross-origin request refused")
				return
			case !strings.EqualFold(strings.TrimSpace(ct), "application/json"):
				abortJSON(c, http.StatusUnsupportedMediaType, "instant: content type must be application/json")
				return
			case req.ContentLength > maxBodyBytes:
				err = &http.MaxBytesError{Limit: maxBodyBytes}
			default:
				body, err = io.ReadAll(http.MaxBytesReader(c.Writer, req.Body, maxBodyBytes))
			}
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					abortJSON(c, http.StatusRequestEntityTooLarge, "instant: body larger than 64 KiB")
				} else {
					abortJSON(c, http.StatusBadRequest, "instant: could not read the body")
				}
				return
			}
			if !utf8.Valid(body) {
				abortJSON(c, http.StatusBadRequest, "instant: body is not valid UTF-8")
				return
			}
		}
		r.handle(i, c, body)
	}
	g.Any("/:route", serve)
	g.Any("/proxy/:kind", serve)
	if i != nil && i.server != nil {
		g.GET("/"+websocketPath, gin.WrapH(i.server.Handler()))
	}
}

// Register is the package-level form: inst.Register(g) of the package
// default Instant (see the package-level Session). It panics, at startup,
// when the environment does not configure it.
func Register(g *gin.RouterGroup) { packageDefault().Register(g) }

// decodeBody decodes a JSON object; an empty body decodes as {}. On
// failure it has answered 400.
func decodeBody(c *gin.Context, body []byte, v any) bool {
	if len(body) == 0 {
		return true
	}
	if s := bytes.TrimSpace(body); len(s) == 0 || s[0] != '{' {
		abortJSON(c, http.StatusBadRequest, "instant: body must be a JSON object")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		abortJSON(c, http.StatusBadRequest, "instant: malformed JSON body")
		return false
	}
	return true
}

// connectingUser is requestUser for a route that serves a connection,
// which DisallowAnonymous refuses to anonymous visitors.
func (i *Instant) connectingUser(c *gin.Context) (*User, bool) {
	u, ok := requestUser(c, false)
	if ok {
		if err := i.mayConnect(u); err != nil {
			refuse(c, err)
			return nil, false
		}
	}
	return u, ok
}

// tokenResponse is the answer of the token routes.
type tokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"` // Unix seconds, the token's "exp"
}

func (i *Instant) connectionTokenRoute(c *gin.Context, body []byte) {
	if !decodeBody(c, body, &struct{}{}) {
		return
	}
	if u, ok := i.connectingUser(c); ok {
		i.answerToken(c, u, "", nil)
	}
}

func (i *Instant) subscriptionTokenRoute(c *gin.Context, body []byte) {
	var req struct {
		Channel string `json:"channel"`
	}
	if !decodeBody(c, body, &req) {
		return
	}
	if u, ok := requestUser(c, false); ok {
		if info, err := i.decide(c, u, req.Channel); err != nil {
			refuse(c, err)
		} else {
			i.answerToken(c, u, req.Channel, info)
		}
	}
}

// authAnswer is one channel of the auth route's answer.
type authAnswer struct {
	Channel   string `json:"channel"`
	Token     string `json:"token,omitempty"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
	Status    int    `json:"status,omitempty"`
}

// authRoute signs a batch of subscription tokens and, with "connection":
// true, a connection token: a page connects and subscribes with one request.
func (i *Instant) authRoute(c *gin.Context, body []byte) {
	var req struct {
		Client     string   `json:"client"`
		Channels   []string `json:"channels"`
		Connection bool     `json:"connection"`
	}
	switch {
	case !decodeBody(c, body, &req):
		return
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
	var out struct {
		Channels   []authAnswer   `json:"channels"`
		Connection *tokenResponse `json:"connection,omitempty"`
	}
	now := time.Now()
	if req.Connection {
		if err := i.mayConnect(u); err != nil {
			refuse(c, err)
			return
		}
		tok, err := i.sign(u, "", nil, now)
		if err != nil {
			i.signFailed(c, err)
			return
		}
		out.Connection = &tokenResponse{Token: tok.Token, ExpiresAt: tok.ExpiresAt.Unix()}
	}
	out.Channels = make([]authAnswer, len(req.Channels))
	for k, ch := range req.Channels {
		a := &out.Channels[k]
		a.Channel = ch
		info, err := i.decide(c, u, ch)
		switch {
		case errors.Is(err, ErrInvalidChannel) || errors.Is(err, ErrLoginRequired):
			refuse(c, err) // the whole batch
			return
		case errors.Is(err, ErrNotAllowed):
			a.Status = http.StatusForbidden
			continue
		case err != nil:
			a.Status = http.StatusInternalServerError // a failed rule
			continue
		}
		tok, err := i.sign(u, ch, info, now)
		if err != nil {
			i.signFailed(c, err)
			return
		}
		a.Token, a.ExpiresAt = tok.Token, tok.ExpiresAt.Unix()
	}
	c.JSON(http.StatusOK, out)
}

// listedChannel is a channel as the channels route lists it.
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
		ws = path.Join(path.Dir(c.Request.URL.Path), websocketPath)
	}
	c.JSON(http.StatusOK, gin.H{"user": u, "channels": listed, "websocket_url": ws, "origin": i.mintOrigin(u)})
}

// refuse answers an error of the decision: 400, 401 or 403 with its text,
// or a 500 (logged where it happened).
func refuse(c *gin.Context, err error) {
	status, msg := errorStatus(err), err.Error()
	if status == http.StatusInternalServerError {
		msg = "instant: server error"
	}
	abortJSON(c, status, msg)
}

// errorStatus is the HTTP status of an error of the decision.
func errorStatus(err error) int {
	switch {
	case errors.Is(err, ErrInvalidChannel):
		return http.StatusBadRequest
	case errors.Is(err, ErrLoginRequired):
		return http.StatusUnauthorized
	case errors.Is(err, ErrNotAllowed):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// answerToken answers a token that it signs.
func (i *Instant) answerToken(c *gin.Context, u *User, channel string, info any) {
	if tok, err := i.sign(u, channel, info, time.Now()); err != nil {
		i.signFailed(c, err)
	} else {
		c.JSON(http.StatusOK, tokenResponse{Token: tok.Token, ExpiresAt: tok.ExpiresAt.Unix()})
	}
}

func (i *Instant) signFailed(c *gin.Context, err error) {
	i.logger.Error("instant: signing failed", "error", err)
	abortJSON(c, http.StatusInternalServerError, "instant: could not sign the token")
}

func abortJSON(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// failServer answers a missing piece of the setup, err (ErrNoSession or
// ErrNotInstalled): a 500 naming it, and one log line.
func failServer(c *gin.Context, i *Instant, err error) {
	logger := slog.Default()
	if i != nil {
		logger = i.logger
	}
	logger.Error(err.Error(), "path", requestPath(c))
	abortJSON(c, http.StatusInternalServerError, err.Error())
}

func requestPath(c *gin.Context) string {
	if c == nil || c.Request == nil || c.Request.URL == nil {
		return ""
	}
	return c.Request.URL.Path
}
