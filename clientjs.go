package instant

import (
	"crypto/sha256"
	_ "embed" // client.js
	"encoding/hex"
	"net/http"

	"github.com/gin-gonic/gin"
)

// clientJS is the browser helper, an ES module served at <group>/client.js,
// with an ETag so that browsers revalidate cheaply.
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
