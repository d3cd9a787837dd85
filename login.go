package instant

import (
	"encoding/json"
	"fmt"

	"github.com/gin-gonic/gin"
)

// sessionKey is the session value in which Login keeps the user, as JSON.
const sessionKey = "instant.user"

// Login stores u in the session as the logged-in user and saves the
// session. It needs sessions.Sessions before it (ErrNoSession otherwise)
// and refuses a user without a valid ID, with a bad group name or with an
// Info that does not encode as JSON (ErrInvalidUser). The rest of the
// request sees u as the current user. Numbers in Info are kept exact (see
// User.Info).
//
// With a cookie store the session, and so the login, lives in the
// browser's cookie: see the README on ending logins.
func Login(c *gin.Context, u User) error {
	if err := u.validate(); err != nil {
		return err
	}
	s, ok := sessionOf(c)
	if !ok {
		return ErrNoSession
	}
	raw, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	s.Set(sessionKey, string(raw))
	if err := s.Save(); err != nil {
		return fmt.Errorf("instant: save session: %w", err)
	}
	if st, _ := stateOfGin(c); st != nil {
		st.set(decodeUser(string(raw)))
	}
	return nil
}

// Logout removes the user from the session and saves it. Other session
// values are kept. It does not close the user's open Centrifugo
// connections: call Disconnect for that.
func Logout(c *gin.Context) error {
	s, ok := sessionOf(c)
	if !ok {
		return ErrNoSession
	}
	s.Delete(sessionKey)
	if err := s.Save(); err != nil {
		return fmt.Errorf("instant: save session: %w", err)
	}
	if st, _ := stateOfGin(c); st != nil {
		st.set(nil)
	}
	return nil
}
