package instant

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"sync"

	"github.com/gin-gonic/gin"
)

// originHeader is the request header in which the browser helper
// (client.js) sends its tab's origin id on the app's own fetches.
const originHeader = "X-Instant-Origin"

// maxOriginLength bounds Event.Origin and the origin header.
const maxOriginLength = 64

// An origin id is a nonce and a MAC of it and the identity of the user it
// was minted for, both base64url: 38 characters of [A-Za-z0-9_-].
const (
	originNonceBytes = 12
	originMACBytes   = 16
	originNonceLen   = 16 // base64url of originNonceBytes
	originMACLen     = 22 // base64url (unpadded) of originMACBytes
	originLen        = originNonceLen + originMACLen
)

// Origin returns the browser tab's origin id that the request carries in
// the X-Instant-Origin header, or "" when it carries none or one that was not minted for
// the request's current user. The channels route mints a tab's id (its
// "origin"), bound to the user it answers: an id seen in another user's
// events, sent back by that other user, is ignored, so nobody makes their
// events vanish from someone else's tab. Anonymous visitors share one
// identity: an anonymous visitor may send back another anonymous tab's id.
// Origin needs Session (it answers "" outside it) and, with LoadUser, may
// load the user. One line makes an event skip the tab that caused it:
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
	st, reentrant := stateOfGin(c)
	if st == nil {
		return ""
	}
	u, err := st.load(reentrant)
	if err != nil || !st.inst.originFor(o, u) {
		return ""
	}
	return o
}

// mintOrigin makes a new origin id for user (nil for anonymous).
func (i *Instant) mintOrigin(user *User) string {
	var nonce [originNonceBytes]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails (Go 1.24+)
	var id [originLen]byte
	base64.RawURLEncoding.Encode(id[:originNonceLen], nonce[:])
	m := i.origins.Get().(*originMAC)
	m.sum(id[:originNonceLen], user)
	copy(id[originNonceLen:], m.enc[:])
	i.origins.Put(m)
	return string(id[:])
}

// originFor reports whether o, originLen bytes long, was minted for user.
func (i *Instant) originFor(o string, user *User) bool {
	m := i.origins.Get().(*originMAC)
	defer i.origins.Put(m)
	n := copy(m.got[:], o)
	m.sum(m.got[:originNonceLen], user)
	return n == originLen && subtle.ConstantTimeCompare(m.enc[:], m.got[originNonceLen:]) == 1
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

// sum sets m.enc to the MAC of nonce (base64url) and user's identity: "u"
// and the ID, or "a" for anonymous. The nonce has a fixed length, so the
// input reads one way only.
func (m *originMAC) sum(nonce []byte, user *User) {
	m.h.Reset()
	m.h.Write(nonce)
	if user == nil {
		m.write("a")
	} else {
		m.write("u")
		m.write(user.ID)
	}
	base64.RawURLEncoding.Encode(m.enc[:], m.h.Sum(m.out[:0])[:originMACBytes])
}

// write hashes s through m.buf (a string converted to []byte for
// hash.Hash.Write would be allocated).
func (m *originMAC) write(s string) {
	for len(s) > 0 {
		n := copy(m.buf[:], s)
		m.h.Write(m.buf[:n])
		s = s[n:]
	}
}

// newOriginPool returns a pool of originMACs keyed with a key derived from
// the token secret, for origin ids only.
func newOriginPool(secret []byte) *sync.Pool {
	d := hmac.New(sha256.New, secret)
	d.Write([]byte("instant origin key v1"))
	key := d.Sum(nil)
	return &sync.Pool{New: func() any { return &originMAC{h: hmac.New(sha256.New, key)} }}
}

// validOrigin reports whether o is an origin id as Origin(c) accepts one:
// 1 to 64 letters, digits, '-' and '_'.
func validOrigin(o string) bool {
	if o == "" || len(o) > maxOriginLength {
		return false
	}
	for k := 0; k < len(o); k++ {
		b := o[k]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}
