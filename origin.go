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

// originHeader carries a tab's origin id on the app's own fetches
// (client.js sets it).
const originHeader = "X-Instant-Origin"

// maxOriginLength bounds Event.Origin and the origin header.
const maxOriginLength = 64

// An origin id is a nonce and a MAC of it and the identity of the user it
// was minted for, both base64url: 38 characters of [A-Za-z0-9_-].
const (
	originNonceBytes = 12
	originMACBytes   = 16
	originNonceLen   = 16 // base64url of originNonceBytes
	originMACLen     = 22 // unpadded base64url of originMACBytes
	originLen        = originNonceLen + originMACLen
)

// Origin returns the browser tab's id (its "origin", which the channels
// route mints bound to the user it answers) that the request carries in
// the X-Instant-Origin header, or "" when it carries none or one minted
// for another user, so that nobody makes their events vanish from someone
// else's tab (anonymous visitors share one identity). It needs Session ("",
// outside it) and may load the user. An event then skips the tab that
// caused it:
//
//	inst.Broadcast(c, instant.Event{Channel: "$site_users", Message: "saved", Origin: instant.Origin(c)})
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
	copy(m.got[:], o)
	m.sum(m.got[:originNonceLen], u)
	if subtle.ConstantTimeCompare(m.enc[:], m.got[originNonceLen:]) != 1 {
		return ""
	}
	return o
}

// mintOrigin makes a new origin id for user (nil for anonymous).
func (i *Instant) mintOrigin(user *User) string {
	var nonce [originNonceBytes]byte
	_, _ = rand.Read(nonce[:]) // never fails (Go 1.24+)
	var id [originLen]byte
	base64.RawURLEncoding.Encode(id[:originNonceLen], nonce[:])
	m := i.origins.Get().(*originMAC)
	m.sum(id[:originNonceLen], user)
	copy(id[originNonceLen:], m.enc[:])
	i.origins.Put(m)
	return string(id[:])
}

// originMAC is a pooled HMAC-SHA256 keyed with the origin key, with room
// for its input and output, so that checking an id allocates nothing.
type originMAC struct {
	h   hash.Hash
	buf [64]byte
	out [sha256.Size]byte
	enc [originMACLen]byte // the MAC of the last sum, base64url
	got [originLen]byte    // the id being checked
}

// sum sets m.enc to the MAC of nonce and user's identity: "u" and the ID,
// or "a" for anonymous (the nonce has a fixed length: one reading only).
func (m *originMAC) sum(nonce []byte, user *User) {
	m.h.Reset()
	m.h.Write(nonce)
	// Through m.buf: a string made []byte would be allocated.
	id := ""
	m.buf[0] = 'a'
	if user != nil {
		m.buf[0], id = 'u', user.ID
	}
	n := 1 + copy(m.buf[1:], id)
	m.h.Write(m.buf[:n])
	for id = id[n-1:]; len(id) > 0; id = id[n:] {
		n = copy(m.buf[:], id)
		m.h.Write(m.buf[:n])
	}
	base64.RawURLEncoding.Encode(m.enc[:], m.h.Sum(m.out[:0])[:originMACBytes])
}

// newOriginPool returns a pool of originMACs keyed with a key derived from
// the token secret, for origin ids only.
func newOriginPool(secret []byte) *sync.Pool {
	d := hmac.New(sha256.New, secret)
	d.Write([]byte("instant origin key v1"))
	key := d.Sum(nil)
	return &sync.Pool{New: func() any { return &originMAC{h: hmac.New(sha256.New, key)} }}
}

// validOrigin reports whether o may be an origin id: 1 to 64 letters,
// digits, '-' and '_'.
func validOrigin(o string) bool {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return o != "" && len(o) <= maxOriginLength && strings.Trim(o, alphabet) == ""
}
