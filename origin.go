package instant

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

const (
	originHeader    = "X-Instant-Origin" // a tab's origin id on the app's own fetches (client.js sets it)
	maxOriginLength = 64                 // bounds Event.Origin and the origin header
	// An origin id is a random nonce, base64url (16 characters), then the
	// first 16 bytes of its MAC, base64url (22 characters).
	originNonceLen = 16
	originLen      = originNonceLen + 22
)

// Origin returns the tab id that the request carries in X-Instant-Origin (the
// channels route mints it, bound to the user), or "" when none, one minted for
// another user (anonymous visitors share one identity), or outside Session. It
// may load the user. An Event with this Origin skips the tab that caused it.
func Origin(c *gin.Context) string {
	if c == nil || c.Request == nil {
		return ""
	}
	o := c.Request.Header.Get(originHeader)
	if len(o) != originLen {
		return ""
	}
	st, u, err := stateOf(c, true)
	if st == nil || err != nil {
		return ""
	}
	m := st.inst.origins.Get().(*originMAC)
	defer st.inst.origins.Put(m)
	if subtle.ConstantTimeCompare(m.sum(o[:originNonceLen], u), []byte(o[originNonceLen:])) != 1 {
		return ""
	}
	return o
}

// mintOrigin makes a new origin id for user (nil for anonymous).
func (i *Instant) mintOrigin(user *User) string {
	var nonce [originNonceLen * 3 / 4]byte
	_, _ = rand.Read(nonce[:]) // never fails (Go 1.24+)
	id := base64.RawURLEncoding.EncodeToString(nonce[:])
	m := i.origins.Get().(*originMAC)
	defer i.origins.Put(m)
	return id + string(m.sum(id, user))
}

// originMAC is a pooled HMAC-SHA256 with room for its input and output:
// checking an id allocates nothing.
type originMAC struct {
	h   hash.Hash
	buf [originNonceLen + 1 + maxChannelLength]byte
	out [sha256.Size]byte
	enc [originLen - originNonceLen]byte
}

// sum returns the encoded MAC of nonce and user's identity: "u" and the
// ID (a valid name: at most 255 bytes), or "a" for anonymous.
func (m *originMAC) sum(nonce string, user *User) []byte {
	n := copy(m.buf[:], nonce)
	m.buf[n] = 'a'
	if user != nil {
		m.buf[n] = 'u'
		n += copy(m.buf[n+1:], user.ID)
	}
	m.h.Reset()
	m.h.Write(m.buf[:n+1])
	base64.RawURLEncoding.Encode(m.enc[:], m.h.Sum(m.out[:0])[:16])
	return m.enc[:]
}

func newOriginPool(secret []byte) *sync.Pool {
	key := deriveKey(secret, "origin")
	return &sync.Pool{New: func() any { return &originMAC{h: hmac.New(sha256.New, key)} }}
}

// validOrigin reports whether o may be an origin id: 1 to 64 letters,
// digits, '-' and '_'.
func validOrigin(o string) bool {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return o != "" && len(o) <= maxOriginLength && strings.Trim(o, alphabet) == ""
}
