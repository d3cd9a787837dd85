package instant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// User is the logged-in user as the session keeps it. Only ID reaches
// Centrifugo (as the tokens' "sub"); the rest decides which channels the
// user may read.
type User struct {
	// ID identifies the user to Centrifugo. Required: not empty, at most
	// 255 bytes, no whitespace or control characters.
	ID string `json:"id"`
	// Username is shown to people; it grants nothing.
	Username string `json:"username"`
	// Staff users read the staff channels.
	Staff bool `json:"staff"`
	// Superusers read the superuser channels, and count as staff.
	Superuser bool `json:"superuser"`
	// Groups the user belongs to, each granting its GroupChannels.
	Groups []string `json:"groups,omitempty"`
	// Info is optional presence data, put in the tokens' "info" claim:
	// what other subscribers see of this user. It must encode as JSON
	// that is valid UTF-8 (a json.RawMessage inside it is checked byte for
	// byte) and nests at most 64 arrays and objects deep: LoadUser's user
	// is refused otherwise, and no token is signed with it (500).
	// Numbers are kept exact, digit for digit, whatever their size: the
	// user's Info as CurrentUser and rules see it holds
	// every number as a json.Number (its exact text; Int64, Float64 and
	// String read it), not a float64.
	Info map[string]any `json:"info,omitempty"`
}

// IsStaff reports whether u reads staff channels: staff and superusers do.
func (u *User) IsStaff() bool { return u != nil && (u.Staff || u.Superuser) }

// InGroup reports whether u belongs to group.
func (u *User) InGroup(group string) bool { return u != nil && slices.Contains(u.Groups, group) }

// validate checks what Login and LoadUser may hand over. Errors wrap
// ErrInvalidUser and never repeat the value (it may be anything).
func (u *User) validate() error {
	if err := checkName(u.ID, "ID"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidUser, err)
	}
	for _, g := range u.Groups {
		if err := checkName(g, "group"); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidUser, err)
		}
	}
	return nil
}

// normalized returns a copy of u whose Info holds JSON values only (maps,
// slices, strings, json.Numbers, bools, nil), as a session-decoded user's
// does, so that clone can copy it deeply. Numbers keep their exact digits
// (9007199254740993 stays so, where a float64 would make it ...992). It
// fails when Info does not encode as JSON, or encodes as JSON that is not
// valid UTF-8 (a json.RawMessage inside it) or nests more than
// maxJSONDepth deep.
func (u *User) normalized() (*User, error) {
	cp := *u
	cp.Groups = slices.Clone(u.Groups)
	if len(u.Info) == 0 {
		cp.Info = nil
		return &cp, nil
	}
	raw, err := json.Marshal(u.Info)
	if err != nil {
		return nil, fmt.Errorf("%w: Info does not encode as JSON", ErrInvalidUser)
	}
	if err := checkJSON(raw); err != nil {
		// It would reach Centrifugo, and the channel's members, in tokens.
		return nil, fmt.Errorf("%w: Info %w", ErrInvalidUser, err)
	}
	cp.Info = nil
	if err := unmarshalExact(raw, &cp.Info); err != nil {
		return nil, fmt.Errorf("%w: Info does not decode as a JSON object", ErrInvalidUser)
	}
	return &cp, nil
}

// unmarshalExact is json.Unmarshal, but numbers decode as json.Number, so
// that no digit is lost: what Info holds is what the tokens and the
// channels route encode again.
func unmarshalExact(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("instant: data after the JSON value")
	}
	return nil
}

// clone returns a copy of u that its receiver may change freely: Groups
// and everything inside Info are copied too. Info must hold JSON values
// only (see normalized); other values are shared.
func (u *User) clone() *User {
	if u == nil {
		return nil
	}
	cp := *u
	cp.Groups = slices.Clone(u.Groups)
	if u.Info != nil {
		cp.Info = cloneJSON(u.Info).(map[string]any)
	}
	return &cp
}

// cloneJSON copies a decoded JSON value deeply.
func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = cloneJSON(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for k, e := range v {
			s[k] = cloneJSON(e)
		}
		return s
	default:
		return v // strings, json.Numbers, bools and nil are values
	}
}

// decodeUser reads a session value written by Login; nil when it holds no
// valid user. Numbers in Info are kept exact (json.Number).
func decodeUser(raw string) *User {
	if raw == "" {
		return nil
	}
	u := new(User)
	if unmarshalExact([]byte(raw), u) != nil || u.validate() != nil {
		return nil
	}
	return u
}

// Bounds of userCache, in bytes of session values.
const (
	// userCacheBytes bounds what the cache holds; past it, it starts over.
	userCacheBytes = 4 << 20
	// userCacheMaxValue is the longest session value kept: longer ones are
	// decoded on every request instead.
	userCacheMaxValue = 4 << 10
	// userCacheOverhead is counted for each entry besides its value: the
	// map slot and the decoded User's fixed part.
	userCacheOverhead = 256
)

// userCache maps a session value, as Login wrote it, to the decoded user,
// so that a returning visitor's user is decoded once, not on every
// request. The key is the exact value the session store authenticated,
// so an entry can only be reached with the same session content. It is
// bounded by bytes: each entry counts twice its value's length (the key
// and the decoded user) plus userCacheOverhead.
type userCache struct {
	mu    sync.RWMutex
	m     map[string]*User
	bytes int
}

// decode returns the user raw holds (nil when it holds none), shared with
// the cache: the caller must not modify it nor hand it out (see clone).
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
	cost := 2*len(raw) + userCacheOverhead
	uc.mu.Lock()
	if uc.m == nil || uc.bytes+cost > userCacheBytes {
		uc.m, uc.bytes = make(map[string]*User, 64), 0
	}
	if _, dup := uc.m[raw]; !dup {
		uc.m[raw] = u
		uc.bytes += cost
	}
	uc.mu.Unlock()
	return u
}

// size reports the entries and the bytes counted for them.
func (uc *userCache) size() (entries, bytes int) {
	uc.mu.RLock()
	defer uc.mu.RUnlock()
	return len(uc.m), uc.bytes
}
