package instant

import (
	"bytes"
	"crypto/sha256"
	_ "embed" // client.js
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

const (
	maxBodyBytes     = 64 << 10 // the largest body a POST route reads
	maxBatchChannels = 100      // the most channels one auth request names
	websocketPath    = "connection/websocket"
)

// routes is every endpoint Register serves, by its path in the group.
var routes = map[string]struct {
	method string
	handle func(i *Instant, c *gin.Context, body []byte)
}{
	"connection_token":   {http.MethodPost, (*Instant).tokenRoute},
	"subscription_token": {http.MethodPost, (*Instant).tokenRoute},
	"auth":               {http.MethodPost, (*Instant).authRoute},
	"presence":           {http.MethodPost, (*Instant).presenceRoute},
	"channels":           {http.MethodGet, (*Instant).channelsRoute},
	"client.js":          {http.MethodGet, (*Instant).clientJSRoute},
	"proxy/connect":      {http.MethodPost, (*Instant).proxyRoute},
	"proxy/refresh":      {http.MethodPost, (*Instant).proxyRoute},
	"proxy/subscribe":    {http.MethodPost, (*Instant).proxyRoute},
	"proxy/sub_refresh":  {http.MethodPost, (*Instant).proxyRoute},
}

// Register mounts the README's routes on g, a group of its own (with Server,
// its connection/websocket too), after sessions.Sessions (else 500). POSTs take
// JSON of at most 64 KiB, same-origin or TrustedOrigins; auth at most 100
// channels, presence 20 (502 server failed, 503 refused). Errors: {"error"}, 405 with Allow.
func (i *Instant) Register(g *gin.RouterGroup) {
	var serve gin.HandlerFunc
	serve = func(c *gin.Context) {
		name := c.Param("route")
		if name == "" {
			name = "proxy/" + c.Param("kind")
		}
		r, ok := routes[name]
		m := c.Request.Method
		switch {
		case !ok:
			abortJSON(c, http.StatusNotFound, "instant: no such route")
			return
		case m != r.method && (r.method != http.MethodGet || m != http.MethodHead):
			c.Header("Allow", strings.Replace(r.method, http.MethodGet, "GET, HEAD", 1))
			abortJSON(c, http.StatusMethodNotAllowed, "instant: method not allowed, use "+r.method)
			return
		case i == nil:
			failServer(c, nil, ErrNotInstalled)
			return
		}
		if st, _, _ := stateOf(c, false); name != "client.js" && (st == nil || st.inst != i) {
			i.track(c, func() { serve(c) }) // again, with the state recorded
			return
		}
		var body []byte
		if r.method == http.MethodPost {
			ct, _, _ := strings.Cut(c.GetHeader("Content-Type"), ";")
			var err error
			if i.cop.Check(c.Request) != nil {
				abortJSON(c, http.StatusForbidden, "instant: cross-origin request refused")
				return
			} else if !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
				abortJSON(c, http.StatusUnsupportedMediaType, "instant: content type must be application/json")
				return
			}
			body, err = io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
			switch {
			case err != nil && errors.As(err, new(*http.MaxBytesError)):
				abortJSON(c, http.StatusRequestEntityTooLarge, "instant: body larger than 64 KiB")
				return
			case err != nil:
				abortJSON(c, http.StatusBadRequest, "instant: could not read the body")
				return
			case !utf8.Valid(body):
				abortJSON(c, http.StatusBadRequest, "instant: body is not valid UTF-8")
				return
			}
		}
		r.handle(i, c, body)
	}
	g.Any("/:route", serve)
	g.Any("/proxy/:kind", serve)
	if i != nil && i.cfg.Server != nil {
		g.GET("/"+websocketPath, gin.WrapH(i.cfg.Server.Handler()))
	}
}

// Register is inst.Register(g) of the package default Instant (see the
// package-level Session); it panics when the environment configures none.
func Register(g *gin.RouterGroup) { packageDefault().Register(g) }

// decodeBody decodes a JSON object ("" as {}), else answers 400.
func decodeBody(c *gin.Context, body []byte, v any) bool {
	if s := bytes.TrimSpace(body); len(body) > 0 && (len(s) == 0 || s[0] != '{') {
		abortJSON(c, http.StatusBadRequest, "instant: body must be a JSON object")
		return false
	} else if len(body) > 0 && json.Unmarshal(body, v) != nil {
		abortJSON(c, http.StatusBadRequest, "instant: malformed JSON body")
		return false
	}
	return true
}

// connectingUser is requestUser, refusing visitors if DisallowAnonymous.
func (i *Instant) connectingUser(c *gin.Context) (*User, bool) {
	u, ok := requestUser(c, false)
	if err := i.mayConnect(u); ok && err != nil {
		refuse(c, err)
		return nil, false
	}
	return u, ok
}

type tokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"` // Unix seconds, the token's "exp"
}

func (i *Instant) tokenRoute(c *gin.Context, body []byte) {
	var req struct {
		Channel string `json:"channel"`
	}
	sub, dst := c.Param("route") == "subscription_token", any(&struct{}{}) // connection_token reads no field
	if sub {
		dst = &req
	}
	if !decodeBody(c, body, dst) {
		return
	}
	u, ok := requestUser(c, false)
	if !ok {
		return
	}
	var info any
	err := i.mayConnect(u)
	if sub {
		info, err = i.decide(c, u, req.Channel)
	}
	if err != nil {
		refuse(c, err)
	} else if tok, err := i.sign(u, req.Channel, info, i.clock.now()); err != nil {
		i.signFailed(c, err)
	} else {
		c.JSON(http.StatusOK, tokenResponse{Token: tok.Token, ExpiresAt: tok.ExpiresAt.Unix()})
	}
}

type authAnswer struct {
	Channel   string `json:"channel"`
	Token     string `json:"token,omitempty"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
	Status    int    `json:"status,omitempty"`
}

// authRoute signs a batch of subscription tokens, and a connection token too
// with "connection": true.
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
	now := i.clock.now()
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
	var userJSON json.RawMessage // User.Info for the private channels, encoded once a batch
	for k, ch := range req.Channels {
		a := &out.Channels[k]
		a.Channel = ch
		info, err := i.decide(c, u, ch)
		if s := errorStatus(err); err != nil && s < http.StatusForbidden {
			refuse(c, err) // a bad name, or a visitor refused: the whole batch
			return
		} else if err != nil {
			a.Status = s // 403, or 500 for a failed rule
			continue
		}
		if info == nil && isPrivate(ch) {
			if userJSON == nil {
				if userJSON, err = userInfo(u); err != nil {
					i.signFailed(c, err)
					return
				}
			}
			info = userJSON
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
	if i.cfg.Server != nil && ws == "" {
		ws = path.Join(path.Dir(c.Request.URL.Path), websocketPath)
	}
	c.JSON(http.StatusOK, gin.H{"user": u, "channels": listed, "websocket_url": ws, "origin": i.mintOrigin(u)})
}

// refuse answers an error of the decision: 400, 401 or 403 with its text,
// or a 500 (logged where it happened).
func refuse(c *gin.Context, err error) {
	if status := errorStatus(err); status == http.StatusInternalServerError {
		abortJSON(c, status, "instant: server error")
	} else {
		abortJSON(c, status, err.Error())
	}
}

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

func (i *Instant) signFailed(c *gin.Context, err error) {
	i.cfg.Logger.Error("instant: signing failed", "error", err)
	abortJSON(c, http.StatusInternalServerError, "instant: could not sign the token")
}

func abortJSON(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// failServer answers a missing piece of the setup (ErrNoSession,
// ErrNotInstalled): a 500 naming it, and one log line.
func failServer(c *gin.Context, i *Instant, err error) {
	logger := slog.Default()
	if i != nil {
		logger = i.cfg.Logger
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

// clientJS is the browser helper, an ES module, with an ETag to revalidate.
//
//go:embed client.js
var clientJS []byte
var clientJSTag = func() string { sum := sha256.Sum256(clientJS); return `"` + hex.EncodeToString(sum[:8]) + `"` }()

func (i *Instant) clientJSRoute(c *gin.Context, _ []byte) {
	c.Header("ETag", clientJSTag)
	c.Header("Cache-Control", "no-cache")
	c.Header("X-Content-Type-Options", "nosniff")
	if c.GetHeader("If-None-Match") == clientJSTag {
		c.Status(http.StatusNotModified)
	} else {
		c.Data(http.StatusOK, "text/javascript; charset=utf-8", clientJS)
	}
}
