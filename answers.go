package instant

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
)

// tokenResponse is the answer of the token routes.
type tokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"` // Unix seconds, the token's "exp"
}

// refuse answers an error of the decision: 400, 401 or 403 with its text,
// or a 500 (already logged where it happened).
func (i *Instant) refuse(c *gin.Context, err error) {
	status := errorStatus(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "instant: server error"
	}
	abortJSON(c, status, msg)
}

// errorStatus is the HTTP status of an error of the decision.
func errorStatus(err error) int {
	switch {
	case errors.Is(err, ErrInvalidChannel):
		return http.StatusBadRequest
	case errors.Is(err, ErrLoginRequired):
		return http.StatusUnauthorized
	case errors.Is(err, ErrNotAllowed):
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

func (i *Instant) answerToken(c *gin.Context, tok Token, err error) {
	if err != nil {
		i.logger.Error("instant: signing failed", "error", err)
		abortJSON(c, http.StatusInternalServerError, "instant: could not sign the token")
		return
	}
	c.JSON(http.StatusOK, tokenResponse{Token: tok.Token, ExpiresAt: tok.ExpiresAt.Unix()})
}

func abortJSON(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// failServer answers a server-side fault: a 500 and one log line. The
// answer names only the sentinel (what is missing); the log has the rest.
func failServer(c *gin.Context, i *Instant, err error) {
	logger := slog.Default()
	if i != nil {
		logger = i.logger
	}
	logger.Error(err.Error(), "path", requestPath(c))
	msg := "instant: server error"
	for _, known := range []error{ErrNoSession, ErrNotInstalled} {
		if errors.Is(err, known) {
			msg = known.Error()
		}
	}
	abortJSON(c, http.StatusInternalServerError, msg)
}

func requestPath(c *gin.Context) string {
	if c == nil || c.Request == nil || c.Request.URL == nil {
		return ""
	}
	return c.Request.URL.Path
}
