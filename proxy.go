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

// proxyKeyHeader carries proxyKey on Centrifugo's proxy requests
// (CentrifugoConfig sets it as a static header).
const proxyKeyHeader = "X-Instant-Proxy-Key"

// deriveProxyKey makes the secret key of Centrifugo's proxy requests, an
// HMAC of the token secret, so that neither the token secret nor the API
// key travels with them. Never logged.
func deriveProxyKey(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("instant proxy key v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// The proxy routes, in Register's group.
const (
	routeProxyConnect    = "proxy/connect"
	routeProxyRefresh    = "proxy/refresh"
	routeProxySubscribe  = "proxy/subscribe"
	routeProxySubRefresh = "proxy/sub_refresh"
)

// Proxy answers. Centrifugo's codes: errors 400..1999; disconnects
// 4000..4499 tell the client to reconnect, 4500..4999 not to.
var (
	retryLater    = gin.H{"disconnect": gin.H{"code": 4002, "message": "user unavailable, retry"}} // LoadUser failed
	loginRequired = gin.H{"disconnect": gin.H{"code": 4501, "message": "login required"}}
	expired       = gin.H{"result": gin.H{"expired": true}}
	denied        = gin.H{"error": gin.H{"code": 403, "message": "permission denied"}}
	ruleFailed    = gin.H{"error": gin.H{"code": 500, "message": "internal error"}}
)

// proxyRoute answers Centrifugo's four proxies, after the proxy key (403
// without it) and by the decision the token routes use:
//   - connect (a client without a token): the session user becomes the
//     connection's user, with no info, as in a connection token;
//   - refresh: the connection lives on while the session holds its user;
//   - subscribe (channels without a token: public ones): allowed with the
//     override a token would carry; a refusal is an explicit error;
//   - sub_refresh: the subscription lives on while the decision allows it.
//
// A user that could not be loaded is a disconnect with reconnect.
func (i *Instant) proxyRoute(c *gin.Context, body []byte) {
	if subtle.ConstantTimeCompare([]byte(c.GetHeader(proxyKeyHeader)), []byte(i.proxyKey)) != 1 {
		abortJSON(c, http.StatusForbidden, "instant: proxy request without the proxy key")
		return
	}
	var req struct {
		User    string `json:"user"`
		Channel string `json:"channel"`
	}
	if !decodeBody(c, body, &req) {
		return
	}
	_, u, err := stateOf(c, true)
	if err != nil {
		c.JSON(http.StatusOK, retryLater)
		return
	}
	id := ""
	if u != nil {
		id = u.ID
	}
	kind := c.Param("kind")
	if kind == "connect" || kind == "refresh" {
		exp := time.Now().Add(i.cfg.ConnectionTokenTTL).Unix()
		switch {
		case kind == "connect" && i.mayConnect(u) != nil:
			c.JSON(http.StatusOK, loginRequired)
		case kind == "connect":
			c.JSON(http.StatusOK, gin.H{"result": gin.H{"user": id, "expire_at": exp}})
		case id != req.User || i.mayConnect(u) != nil:
			c.JSON(http.StatusOK, expired)
		default:
			c.JSON(http.StatusOK, gin.H{"result": gin.H{"expire_at": exp}})
		}
		return
	}
	var info any
	if err = ErrNotAllowed; id == req.User {
		info, err = i.decide(c, u, req.Channel)
	}
	result := gin.H{"expire_at": time.Now().Add(i.cfg.SubscriptionTokenTTL).Unix()}
	switch {
	case err != nil && kind == "sub_refresh":
		c.JSON(http.StatusOK, expired)
	case errors.Is(err, errRuleFailed):
		c.JSON(http.StatusOK, ruleFailed)
	case err != nil:
		c.JSON(http.StatusOK, denied)
	case kind == "subscribe":
		if info != nil {
			result["info"] = info
		}
		result["override"] = publicOverride
		if isPrivate(req.Channel) {
			result["override"] = privateOverride
		}
		fallthrough
	default:
		c.JSON(http.StatusOK, gin.H{"result": result})
	}
}
