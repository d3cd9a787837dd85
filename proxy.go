package instant

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// proxyKeyHeader carries proxyKey on Centrifugo's proxy requests.
// CentrifugoConfig sets it as a static header; the proxy routes refuse a
// request without it.
const proxyKeyHeader = "X-Instant-Proxy-Key"

// deriveProxyKey makes Instant.proxyKey, the key Centrifugo's proxy
// requests must carry in proxyKeyHeader: an HMAC of the TokenSecret, so
// that neither the token secret nor the API key travels with them. It is
// a secret: never logged.
func deriveProxyKey(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("instant proxy key v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// The proxy routes, relative to the group given to Register.
const (
	routeProxyConnect    = "proxy/connect"
	routeProxyRefresh    = "proxy/refresh"
	routeProxySubscribe  = "proxy/subscribe"
	routeProxySubRefresh = "proxy/sub_refresh"
)

// Codes of the proxy answers (Centrifugo's ranges: errors 400..1999;
// disconnects 4000..4499 tell the client to reconnect, 4500..4999 not to).
const (
	proxyErrPermissionDenied = 403
	proxyErrInternal         = 500
	// proxyDisconnectRetry: the user could not be loaded (LoadUser failed,
	// say the database blinked); the client reconnects and asks again.
	proxyDisconnectRetry = 4002
	// proxyDisconnectLogin: anonymous connections are refused; reconnecting
	// would not help until the visitor logs in.
	proxyDisconnectLogin = 4501
)

// proxyRequest holds the fields of Centrifugo's proxy requests the plugin
// reads: the connection's user and, for channel proxies, the channel.
type proxyRequest struct {
	Client  string `json:"client"`
	User    string `json:"user"`
	Channel string `json:"channel"`
}

type proxyError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type proxyAnswer struct {
	Result     any         `json:"result,omitempty"`
	Error      *proxyError `json:"error,omitempty"`
	Disconnect *proxyError `json:"disconnect,omitempty"`
}

var (
	retryLater    = proxyAnswer{Disconnect: &proxyError{Code: proxyDisconnectRetry, Message: "user unavailable, retry"}}
	loginRequired = proxyAnswer{Disconnect: &proxyError{Code: proxyDisconnectLogin, Message: "login required"}}
	expired       = proxyAnswer{Result: map[string]any{"expired": true}}
)

// proxyRead checks the proxy key and decodes the request. On failure it
// has answered (403 for a missing or wrong key, 400 for a bad body).
func (i *Instant) proxyRead(c *gin.Context, body []byte) (proxyRequest, bool) {
	var req proxyRequest
	key := c.GetHeader(proxyKeyHeader)
	if subtle.ConstantTimeCompare([]byte(key), []byte(i.proxyKey)) != 1 {
		abortJSON(c, http.StatusForbidden, "instant: proxy request without the proxy key")
		return req, false
	}
	if !decodeBody(c, body, &req) {
		return req, false
	}
	return req, true
}

// proxyUser returns the session user (nil for anonymous). ok is false when
// it could not be loaded, or, when a connection user is given, when the
// session no longer holds that user.
func proxyUser(c *gin.Context, req *proxyRequest) (u *User, ok bool, err error) {
	st, reentrant := stateOfGin(c)
	if u, err = st.load(reentrant); err != nil {
		return nil, false, err
	}
	if req == nil {
		return u, true, nil
	}
	id := ""
	if u != nil {
		id = u.ID
	}
	return u, id == req.User, nil
}

// proxyConnect answers Centrifugo's connect proxy (clients that connect
// without a token): the session user becomes the connection's user.
func (i *Instant) proxyConnect(c *gin.Context, body []byte) {
	if _, ok := i.proxyRead(c, body); !ok {
		return
	}
	u, _, err := proxyUser(c, nil)
	switch {
	case err != nil:
		c.JSON(http.StatusOK, retryLater)
		return
	case i.mayConnect(u) != nil:
		c.JSON(http.StatusOK, loginRequired)
		return
	}
	// No info, as in a connection token (see signConnection).
	c.JSON(http.StatusOK, proxyAnswer{Result: map[string]any{
		"user":      subject(u),
		"expire_at": time.Now().Add(i.cfg.ConnectionTokenTTL).Unix(),
	}})
}

// proxyRefresh prolongs a connection while its session still holds the
// same user (and anonymous visitors are allowed, for an anonymous one),
// and expires it otherwise.
func (i *Instant) proxyRefresh(c *gin.Context, body []byte) {
	req, ok := i.proxyRead(c, body)
	if !ok {
		return
	}
	u, same, err := proxyUser(c, &req)
	switch {
	case err != nil:
		c.JSON(http.StatusOK, retryLater)
	case !same || i.mayConnect(u) != nil:
		c.JSON(http.StatusOK, expired)
	default:
		c.JSON(http.StatusOK, proxyAnswer{Result: map[string]any{"expire_at": time.Now().Add(i.cfg.ConnectionTokenTTL).Unix()}})
	}
}

// proxySubscribe decides a subscription by the same decision as the token
// routes. Centrifugo treats an empty result as allowed, so a refusal is an
// explicit error. Centrifugo asks only about channels without a token,
// public ones: the answer keeps the subscriber out of presence, joins and
// leaves, as a public channel's token does.
func (i *Instant) proxySubscribe(c *gin.Context, body []byte) {
	req, ok := i.proxyRead(c, body)
	if !ok {
		return
	}
	info, err := i.proxyDecide(c, &req)
	switch {
	case errors.Is(err, errLoadUser):
		c.JSON(http.StatusOK, retryLater)
	case errors.Is(err, errRuleFailed):
		c.JSON(http.StatusOK, proxyAnswer{Error: &proxyError{Code: proxyErrInternal, Message: "internal error"}})
	case err != nil:
		c.JSON(http.StatusOK, proxyAnswer{Error: &proxyError{Code: proxyErrPermissionDenied, Message: "permission denied"}})
	default:
		result := map[string]any{"expire_at": time.Now().Add(i.cfg.SubscriptionTokenTTL).Unix()}
		if info != nil {
			result["info"] = info
		}
		if o := overrideFor(req.Channel); o != nil {
			result["override"] = o
		}
		c.JSON(http.StatusOK, proxyAnswer{Result: result})
	}
}

// proxySubRefresh prolongs a subscription while the decision still allows
// it.
func (i *Instant) proxySubRefresh(c *gin.Context, body []byte) {
	req, ok := i.proxyRead(c, body)
	if !ok {
		return
	}
	_, err := i.proxyDecide(c, &req)
	switch {
	case errors.Is(err, errLoadUser):
		c.JSON(http.StatusOK, retryLater)
	case err != nil:
		c.JSON(http.StatusOK, expired)
	default:
		c.JSON(http.StatusOK, proxyAnswer{Result: map[string]any{"expire_at": time.Now().Add(i.cfg.SubscriptionTokenTTL).Unix()}})
	}
}

// proxyDecide is the decision for a channel proxy request: the session
// must still hold the connection's user.
func (i *Instant) proxyDecide(c *gin.Context, req *proxyRequest) (any, error) {
	u, same, err := proxyUser(c, req)
	switch {
	case err != nil:
		return nil, err
	case !same:
		return nil, ErrNotAllowed
	}
	return i.decide(c, u, req.Channel)
}
