package instant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
)

// User is the logged-in user as the session keeps it. Only ID reaches
// Centrifugo (the tokens' "sub"); the rest decides what the user reads.
type User struct {
	ID        string   `json:"id"`               // required: 255 bytes at most, no whitespace or control characters
	Username  string   `json:"username"`         // shown to people; grants nothing
	Staff     bool     `json:"staff"`            // reads the staff channels
	Superuser bool     `json:"superuser"`        // reads the superuser and staff channels
	Groups    []string `json:"groups,omitempty"` // each grants its GroupChannels
	// Info is what other subscribers see of the user (the tokens' "info"):
	// valid UTF-8 JSON at most 64 deep, else refused; numbers as json.Number.
	Info map[string]any `json:"info,omitempty"`
}

// IsStaff reports whether u reads staff channels: staff and superusers do.
func (u *User) IsStaff() bool { return u != nil && (u.Staff || u.Superuser) }

// InGroup reports whether u belongs to group.
func (u *User) InGroup(group string) bool { return u != nil && slices.Contains(u.Groups, group) }

// validate checks the ID and groups (ErrInvalidUser); nil passes.
func (u *User) validate() error {
	if u == nil {
		return nil
	}
	err := checkName(u.ID, "ID")
	for k := 0; err == nil && k < len(u.Groups); k++ {
		err = checkName(u.Groups[k], "group")
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidUser, err)
	}
	return nil
}

// normalized validates u and returns a copy whose Info holds JSON values
// only, as a decoded session user's does.
func (u *User) normalized() (*User, error) {
	if err := u.validate(); err != nil {
		return nil, err
	}
	cp := *u
	cp.Groups, cp.Info = slices.Clone(u.Groups), nil
	if len(u.Info) == 0 {
		return &cp, nil
	}
	info, raw, err := jsonCopy(u.Info)
	if err != nil {
		return nil, fmt.Errorf("%w: Info does not encode as JSON", ErrInvalidUser)
	} else if err := checkJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: Info %w", ErrInvalidUser, err)
	}
	cp.Info = info
	return &cp, nil
}

// clone returns a deep copy of u.
func (u *User) clone() *User {
	if u == nil {
		return nil
	}
	cp := *u
	cp.Groups = slices.Clone(u.Groups)
	if u.Info != nil {
		cp.Info, _, _ = jsonCopy(u.Info) // cannot fail: JSON values only
	}
	return &cp
}

// jsonCopy copies info through its JSON, raw, numbers as json.Number.
func jsonCopy(info map[string]any) (cp map[string]any, raw []byte, err error) {
	if raw, err = json.Marshal(info); err == nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		err = dec.Decode(&cp)
	}
	return cp, raw, err
}

// decodeUser reads a session value written by Login; nil for no valid user.
func decodeUser(raw string) *User {
	u := new(User)
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(u) != nil || u.validate() != nil || strings.Trim(raw[dec.InputOffset():], " \t\r\n") != "" {
		return nil // not a user, or data after it
	}
	return u
}

// userCache maps a session value (authenticated by the store) to its user,
// decoded once. Values up to userCacheMaxValue, each counted twice plus
// 256 bytes, up to userCacheBytes; past it, it starts over.
const userCacheBytes, userCacheMaxValue = 4 << 20, 4 << 10

type userCache struct {
	mu    sync.RWMutex
	m     map[string]*User
	bytes int
}

// decode is decodeUser, its result shared.
func (uc *userCache) decode(raw string) *User {
	if len(raw) > userCacheMaxValue {
		return decodeUser(raw)
	}
	uc.mu.RLock()
	u, ok := uc.m[raw]
	uc.mu.RUnlock()
	if ok {
		return u
	}
	u = decodeUser(raw)
	cost := 2*len(raw) + 256
	uc.mu.Lock()
	if uc.m == nil || uc.bytes+cost > userCacheBytes {
		uc.m, uc.bytes = make(map[string]*User, 64), 0
	}
	uc.m[raw], uc.bytes = u, uc.bytes+cost // a value decoded twice at once counts twice
	uc.mu.Unlock()
	return u
}

// sessionKey is the session value in which Login keeps the user, as JSON.
const sessionKey = "instant.user"

// Login saves u in the session as the logged-in user, also the request's.
// It needs sessions.Sessions (ErrNoSession) and refuses an invalid ID or group,
// or an Info that is not JSON (ErrInvalidUser). Numbers in Info stay exact.
func Login(c *gin.Context, u User) error {
	if err := u.validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	return saveUser(c, string(raw))
}

// Logout removes the user from the session and saves it, keeping its other
// values. It does not close the user's open connections: Disconnect does.
func Logout(c *gin.Context) error { return saveUser(c, "") }

// saveUser saves raw (none when "") as the session's and the request's user.
func saveUser(c *gin.Context, raw string) error {
	var s sessions.Session
	if c != nil {
		s, _ = c.Value(sessions.DefaultKey).(sessions.Session)
	}
	if s == nil {
		return ErrNoSession
	}
	if raw == "" {
		s.Delete(sessionKey)
	} else {
		s.Set(sessionKey, raw)
	}
	if err := s.Save(); err != nil {
		return fmt.Errorf("instant: save session: %w", err)
	}
	if st, _, _ := stateOf(c, false); st != nil {
		u := decodeUser(raw)
		st.mu.Lock()
		st.loaded, st.user, st.err = true, u, nil
		st.mu.Unlock()
	}
	return nil
}
