package instant

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/centrifugal/gocent/v3"
)

// gocentAPI is the apiClient over gocent/v3, which speaks Centrifugo's
// /api endpoint. Replacing the client means replacing this file.
type gocentAPI struct{ c *gocent.Client }

func newGocentAPI(addr, key string, hc *http.Client) apiClient {
	return gocentAPI{gocent.New(gocent.Config{Addr: addr, Key: key, HTTPClient: hc})}
}

func (g gocentAPI) publish(ctx context.Context, channels []string, payloads [][]byte) error {
	pipe := g.c.Pipe()
	for k, ch := range channels {
		if err := pipe.AddPublish(ch, payloads[k]); err != nil {
			return &PublishError{Op: "publish", Channels: channels, Err: err}
		}
	}
	replies, err := g.c.SendPipe(ctx, pipe)
	if err != nil {
		return apiError("publish", channels, err)
	}
	var failed []string
	var first *gocent.Error
	for k, r := range replies {
		if r.Error != nil {
			failed = append(failed, channels[k])
			if first == nil {
				first = r.Error
			}
		}
	}
	if first != nil {
		return &PublishError{Op: "publish", Channels: failed, Code: first.Code, Message: first.Message, Err: first}
	}
	return nil
}

func (g gocentAPI) unsubscribe(ctx context.Context, channel, user string) error {
	return apiError("unsubscribe", []string{channel}, g.c.Unsubscribe(ctx, channel, user))
}

// reconnectDisconnect is in the range Centrifugo clients reconnect after
// (4000-4499): they ask the routes for a new token, so they come back as
// whoever the session holds now.
var reconnectDisconnect = &gocent.Disconnect{Code: 4001, Reason: "session changed", Reconnect: true}

func (g gocentAPI) disconnect(ctx context.Context, user string) error {
	return apiError("disconnect", nil, g.c.Disconnect(ctx, user, gocent.WithDisconnect(reconnectDisconnect)))
}

func (g gocentAPI) history(ctx context.Context, channel string, limit int) ([]json.RawMessage, error) {
	res, err := g.c.History(ctx, channel, gocent.WithLimit(limit))
	if err != nil {
		return nil, apiError("history", []string{channel}, err)
	}
	out := make([]json.RawMessage, len(res.Publications))
	for k, p := range res.Publications {
		out[k] = json.RawMessage(p.Data)
	}
	return out, nil
}

// apiError wraps an error of gocent's in a *PublishError (nil stays nil).
func apiError(op string, channels []string, err error) error {
	if err == nil {
		return nil
	}
	pe := &PublishError{Op: op, Channels: channels, Err: err}
	var status gocent.ErrStatusCode
	var apiErr *gocent.Error
	switch {
	case errors.As(err, &status):
		pe.StatusCode = status.Code
	case errors.As(err, &apiErr):
		pe.Code, pe.Message = apiErr.Code, apiErr.Message
	}
	return pe
}
