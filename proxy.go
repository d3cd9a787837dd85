package instant

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
)

// proxyKeyHeader carries proxyKey on Centrifugo's proxy requests.
const proxyKeyHeader = "X-Instant-Proxy-Key"

// deriveKey is a key for one purpose only, derived from the token secret.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("instant " + purpose + " key v1"))
	return m.Sum(nil)
}

// proxyRoute answers Centrifugo's proxies (403 without the proxy key) by the
// token routes' decision: connect names the session user; refresh and
// sub_refresh expire what the session or decision no longer allows; subscribe
// (public channels have no token) answers what a token would carry.
// Disconnect codes 4000..4499 make the client reconnect, 4500..4999 not.
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
		c.JSON(http.StatusOK, gin.H{"disconnect": gin.H{"code": 4002, "message": "user unavailable, retry"}})
		return
	}
	id := ""
	if u != nil {
		id = u.ID
	}
	kind, info, ttl := c.Param("kind"), any(nil), i.cfg.ConnectionTokenTTL
	result := gin.H{}
	switch err = i.mayConnect(u); {
	case kind == "connect":
		result["user"] = id
	case id != req.User:
		err = ErrNotAllowed
	case kind != "refresh":
		info, err = i.decide(c, u, req.Channel)
		ttl = i.cfg.SubscriptionTokenTTL
	}
	result["expire_at"] = i.clock.now().Add(ttl).Unix()
	switch {
	case err != nil && kind == "connect":
		c.JSON(http.StatusOK, gin.H{"disconnect": gin.H{"code": 4501, "message": "login required"}})
	case err != nil && kind != "subscribe":
		c.JSON(http.StatusOK, gin.H{"result": gin.H{"expired": true}})
	case errors.Is(err, errRuleFailed):
		c.JSON(http.StatusOK, gin.H{"error": gin.H{"code": 500, "message": "internal error"}})
	case err != nil:
		c.JSON(http.StatusOK, gin.H{"error": gin.H{"code": 403, "message": "permission denied"}})
	case kind == "subscribe":
		if raw, _ := info.(json.RawMessage); len(raw) > 0 { // decide's: empty for a null info
			result["info"] = raw
		}
		result["override"] = overrideFor(req.Channel)
		fallthrough
	default:
		c.JSON(http.StatusOK, gin.H{"result": result})
	}
}
