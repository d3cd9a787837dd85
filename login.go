package instant

import (
	"encoding/json"
	"fmt"

	"github.com/gin-gonic/gin"
)

// sessionKey is the session value in which Login keeps the user, as JSON.
const sessionKey = "instant.user"

// Login stores u in the session as the logged-in user, saves it and makes u
// the request's user. It needs sessions.Sessions before it (ErrNoSession) and
// refuses an invalid ID or group name, or an Info that does not encode as JSON
// (ErrInvalidUser). Numbers in Info stay exact. With a cookie store, see the
// README on ending logins.
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
	s, ok := sessionOf(c)
	if !ok {
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
		st.set(decodeUser(raw))
	}
	return nil
}
