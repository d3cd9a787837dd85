package instant

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// Limits of the token routes.
const (
	// MaxBodyBytes is the largest request body a POST route reads.
	MaxBodyBytes = 64 << 10
	// MaxBatchChannels is the most channels one auth request may name.
	MaxBatchChannels = 100
)

// The route paths, relative to the group given to Register.
const (
	RouteConnectionToken   = "connection_token"
	RouteSubscriptionToken = "subscription_token"
	RouteAuth              = "auth"
	RouteChannels          = "channels"
)

// tokenResponse is the answer of the token routes.
type tokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"` // Unix seconds, the token's "exp"
}

type resolver func() (*Instant, error)

// Register mounts the token routes on g:
//
//	POST connection_token    {}                      → {"token","expires_at"}
//	POST subscription_token  {"channel"}             → {"token","expires_at"} or 403
//	POST auth                {"client","channels"}   → {"channels":[{"channel","token"} or {"channel","status":403}]}
//	GET  channels                                    → {"user","channels":[{"name","level"}],"websocket_url"}
//
// and the Centrifugo proxy routes (see proxy.go). POST routes take a JSON body
// of at most 64 KiB and refuse cross-origin requests (see TrustedOrigins).
// Every client fault gets a 4xx answer {"error": "..."}.
func (i *Instant) Register(g *gin.RouterGroup) {
	register(g, func() (*Instant, error) {
		if i == nil {
			return nil, ErrNotInstalled
		}
		return i, nil
	})
}

// Register mounts the routes bound to the package default Instant (see
// Configure), looked up at each request.
func Register(g *gin.RouterGroup) {
	register(g, packageDefault)
}

func register(g *gin.RouterGroup, resolve resolver) {
	post := func(path string, h func(*Instant, *gin.Context, []byte)) {
		g.POST(path, func(c *gin.Context) {
			i, err := resolve()
			if err != nil {
				failServer(c, nil, err)
				return
			}
			body, ok := i.readPost(c)
			if ok {
				h(i, c, body)
			}
		})
		notAllowed(g, path, "POST")
	}
	post(RouteConnectionToken, (*Instant).connectionTokenRoute)
	post(RouteSubscriptionToken, (*Instant).subscriptionTokenRoute)
	post(RouteAuth, (*Instant).authRoute)
	channels := func(c *gin.Context) {
		i, err := resolve()
		if err != nil {
			failServer(c, nil, err)
			return
		}
		i.channelsRoute(c)
	}
	g.GET(RouteChannels, channels)
	g.HEAD(RouteChannels, channels)
	notAllowed(g, RouteChannels, "GET")
	registerProxy(post)
}

var allMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect,
}

// notAllowed answers 405 to the methods of path other than allowed (and
// HEAD, for a GET route).
func notAllowed(g *gin.RouterGroup, path, allowed string) {
	allow := allowed
	if allowed == http.MethodGet {
		allow = "GET, HEAD"
	}
	for _, m := range allMethods {
		if m == allowed || (allowed == http.MethodGet && m == http.MethodHead) {
			continue
		}
		g.Handle(m, path, func(c *gin.Context) {
			c.Header("Allow", allow)
			abortJSON(c, http.StatusMethodNotAllowed, "instant: method not allowed, use "+allowed)
		})
	}
}

// readPost applies the checks every POST route shares: same origin, JSON
// content type, at most MaxBodyBytes of valid UTF-8. On failure it has
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
	if r.ContentLength > MaxBodyBytes {
		abortJSON(c, http.StatusRequestEntityTooLarge, "instant: body larger than 64 KiB")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, r.Body, MaxBodyBytes))
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

// user returns the request's user; on a LoadUser failure it has answered
// 500 and returns ok false. It answers 401 to an anonymous visitor when
// anonymous visitors are refused.
func (i *Instant) user(c *gin.Context) (u *User, ok bool) {
	u, err := stateOf(c, i).load()
	if err != nil {
		abortJSON(c, http.StatusInternalServerError, "instant: could not load the user")
		return nil, false
	}
	if u == nil && i.cfg.DisallowAnonymous {
		abortJSON(c, http.StatusUnauthorized, "instant: login required")
		return nil, false
	}
	return u, true
}

func (i *Instant) connectionTokenRoute(c *gin.Context, body []byte) {
	var req struct{}
	if !decodeBody(c, body, &req) {
		return
	}
	u, ok := i.user(c)
	if !ok {
		return
	}
	tok, err := i.ConnectionToken(u)
	i.answerToken(c, tok, err)
}

func (i *Instant) subscriptionTokenRoute(c *gin.Context, body []byte) {
	var req struct {
		Channel string `json:"channel"`
	}
	if !decodeBody(c, body, &req) {
		return
	}
	if err := ValidChannel(req.Channel); err != nil {
		abortJSON(c, http.StatusBadRequest, err.Error())
		return
	}
	u, ok := i.user(c)
	if !ok {
		return
	}
	allow, info := i.decide(c, u, req.Channel)
	if !allow {
		abortJSON(c, http.StatusForbidden, "instant: channel not allowed")
		return
	}
	tok, err := i.SubscriptionToken(u, req.Channel, info)
	i.answerToken(c, tok, err)
}

func (i *Instant) answerToken(c *gin.Context, tok Token, err error) {
	if err != nil {
		i.logger.Error("instant: signing failed", "error", err)
		abortJSON(c, http.StatusInternalServerError, "instant: could not sign the token")
		return
	}
	c.JSON(http.StatusOK, tokenResponse{Token: tok.Token, ExpiresAt: tok.ExpiresAt.Unix()})
}

// authAnswer is one channel of the auth route's answer.
type authAnswer struct {
	Channel   string `json:"channel"`
	Token     string `json:"token,omitempty"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
	Status    int    `json:"status,omitempty"`
}

func (i *Instant) authRoute(c *gin.Context, body []byte) {
	var req struct {
		Client   string   `json:"client"`
		Channels []string `json:"channels"`
	}
	if !decodeBody(c, body, &req) {
		return
	}
	switch {
	case len(req.Channels) == 0:
		abortJSON(c, http.StatusBadRequest, "instant: no channels")
		return
	case len(req.Channels) > MaxBatchChannels:
		abortJSON(c, http.StatusBadRequest, "instant: at most 100 channels a batch")
		return
	case req.Client != "" && checkName(req.Client, "client") != nil:
		abortJSON(c, http.StatusBadRequest, "instant: invalid client")
		return
	}
	for _, ch := range req.Channels {
		if err := ValidChannel(ch); err != nil {
			abortJSON(c, http.StatusBadRequest, err.Error())
			return
		}
	}
	u, ok := i.user(c)
	if !ok {
		return
	}
	out := make([]authAnswer, len(req.Channels))
	for k, ch := range req.Channels {
		out[k].Channel = ch
		allow, info := i.decide(c, u, ch)
		if !allow {
			out[k].Status = http.StatusForbidden
			continue
		}
		tok, err := i.SubscriptionToken(u, ch, info)
		if err != nil {
			i.answerToken(c, tok, err)
			return
		}
		out[k].Token, out[k].ExpiresAt = tok.Token, tok.ExpiresAt.Unix()
	}
	c.JSON(http.StatusOK, gin.H{"channels": out})
}

func (i *Instant) channelsRoute(c *gin.Context) {
	u, err := stateOf(c, i).load()
	if err != nil {
		abortJSON(c, http.StatusInternalServerError, "instant: could not load the user")
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"user":          u,
		"channels":      i.ChannelsFor(u),
		"websocket_url": i.cfg.WebsocketURL,
	})
}
