package instant

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// ProxyKeyHeader carries ProxyKey on Centrifugo's proxy requests.
// CentrifugoConfig sets it as a static header; the proxy routes refuse a
// request without it.
const ProxyKeyHeader = "X-Instant-Proxy-Key"

// ProxyKey is the key Centrifugo's proxy requests must carry in
// ProxyKeyHeader: an HMAC of the TokenSecret, so that neither the token
// secret nor the API key travels with them. It is a secret: do not log it.
func (i *Instant) ProxyKey() string {
	if i == nil {
		return ""
	}
	return i.proxyKey
}

func deriveProxyKey(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("instant proxy key v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// The proxy routes, relative to the group given to Register.
const (
	RouteProxyConnect    = "proxy/connect"
	RouteProxyRefresh    = "proxy/refresh"
	RouteProxySubscribe  = "proxy/subscribe"
	RouteProxySubRefresh = "proxy/sub_refresh"
)

// Codes of the proxy answers (Centrifugo's ranges: errors 400..1999,
// disconnects 4000..4999; 4500 and above tell the client not to reconnect).
const (
	proxyErrPermissionDenied = 403
	proxyDisconnectLogin     = 4501
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

func registerProxy(post func(string, func(*Instant, *gin.Context, []byte))) {
	post(RouteProxyConnect, (*Instant).proxyConnect)
	post(RouteProxyRefresh, (*Instant).proxyRefresh)
	post(RouteProxySubscribe, (*Instant).proxySubscribe)
	post(RouteProxySubRefresh, (*Instant).proxySubRefresh)
}

// proxyRead checks the proxy key and decodes the request. On failure it
// has answered (403 for a missing or wrong key, 400 for a bad body).
func (i *Instant) proxyRead(c *gin.Context, body []byte) (proxyRequest, bool) {
	var req proxyRequest
	key := c.GetHeader(ProxyKeyHeader)
	if subtle.ConstantTimeCompare([]byte(key), []byte(i.proxyKey)) != 1 {
		abortJSON(c, http.StatusForbidden, "instant: proxy request without the proxy key")
		return req, false
	}
	if !decodeBody(c, body, &req) {
		return req, false
	}
	return req, true
}

// proxyUser returns the session user if it is the connection's user.
func (i *Instant) proxyUser(c *gin.Context, req proxyRequest) (*User, bool) {
	u, err := stateOf(c, i).load()
	if err != nil {
		return nil, false
	}
	id := ""
	if u != nil {
		id = u.ID
	}
	return u, id == req.User
}

// proxyConnect answers Centrifugo's connect proxy (clients that connect
// without a token): the session user becomes the connection's user.
func (i *Instant) proxyConnect(c *gin.Context, body []byte) {
	if _, ok := i.proxyRead(c, body); !ok {
		return
	}
	u, err := stateOf(c, i).load()
	if err != nil || (u == nil && i.cfg.DisallowAnonymous) {
		c.JSON(http.StatusOK, proxyAnswer{Disconnect: &proxyError{Code: proxyDisconnectLogin, Message: "login required"}})
		return
	}
	sub, info := userClaims(u)
	c.JSON(http.StatusOK, proxyAnswer{Result: map[string]any{
		"user":      sub,
		"info":      info,
		"expire_at": time.Now().Add(i.cfg.ConnectionTokenTTL).Unix(),
	}})
}

// proxyRefresh prolongs a connection while its session still holds the
// same user, and expires it otherwise.
func (i *Instant) proxyRefresh(c *gin.Context, body []byte) {
	req, ok := i.proxyRead(c, body)
	if !ok {
		return
	}
	if _, same := i.proxyUser(c, req); !same {
		c.JSON(http.StatusOK, proxyAnswer{Result: map[string]any{"expired": true}})
		return
	}
	c.JSON(http.StatusOK, proxyAnswer{Result: map[string]any{"expire_at": time.Now().Add(i.cfg.ConnectionTokenTTL).Unix()}})
}

// proxySubscribe decides a subscription by the same rules as the token
// routes. Centrifugo treats an empty result as allowed, so a refusal is an
// explicit error.
func (i *Instant) proxySubscribe(c *gin.Context, body []byte) {
	req, ok := i.proxyRead(c, body)
	if !ok {
		return
	}
	allow, info := i.proxyDecide(c, req)
	if !allow {
		c.JSON(http.StatusOK, proxyAnswer{Error: &proxyError{Code: proxyErrPermissionDenied, Message: "permission denied"}})
		return
	}
	result := map[string]any{"expire_at": time.Now().Add(i.cfg.SubscriptionTokenTTL).Unix()}
	if info != nil {
		result["info"] = info
	}
	c.JSON(http.StatusOK, proxyAnswer{Result: result})
}

// proxySubRefresh prolongs a subscription while the rules still allow it.
func (i *Instant) proxySubRefresh(c *gin.Context, body []byte) {
	req, ok := i.proxyRead(c, body)
	if !ok {
		return
	}
	if allow, _ := i.proxyDecide(c, req); !allow {
		c.JSON(http.StatusOK, proxyAnswer{Result: map[string]any{"expired": true}})
		return
	}
	c.JSON(http.StatusOK, proxyAnswer{Result: map[string]any{"expire_at": time.Now().Add(i.cfg.SubscriptionTokenTTL).Unix()}})
}

func (i *Instant) proxyDecide(c *gin.Context, req proxyRequest) (bool, any) {
	if ValidChannel(req.Channel) != nil {
		return false, nil
	}
	u, same := i.proxyUser(c, req)
	if !same || (u == nil && i.cfg.DisallowAnonymous) {
		return false, nil
	}
	return i.decide(c, u, req.Channel)
}
