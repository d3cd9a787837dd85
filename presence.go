package instant

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// Member is one user present on a channel, all subscriptions together.
type Member struct {
	UserID  string          `json:"user_id"`        // the tokens' "sub"
	Info    json.RawMessage `json:"info,omitempty"` // the info of the user's token for the channel, as JSON; empty when none
	Clients int             `json:"clients"`        // the user's subscriptions to the channel
}

// presenceClient is one subscription.
type presenceClient struct {
	client, user string
	chanInfo     json.RawMessage
}

// Presence lists the logged-in users subscribed to channel, sorted by
// UserID. The channel must be private (else ErrInvalidChannel: a public
// channel's readers never agreed to be listed) and have presence on
// (CentrifugoOptions.Presence). Errors as Broadcast's.
func (i *Instant) Presence(ctx context.Context, channel string) ([]Member, error) {
	if i == nil {
		return nil, ErrNotInstalled
	}
	if err := validChannel(channel); err != nil {
		return nil, err
	}
	if !isPrivate(channel) {
		return nil, fmt.Errorf("%w: %q is public: public channels show no presence", ErrInvalidChannel, channel)
	}
	var lists [][]presenceClient
	err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
		lists, err = api.presenceBatch(ctx, []string{channel})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := []Member{}
	for _, pc := range loggedIn(lists[0]) {
		if n := len(out); n == 0 || out[n-1].UserID != pc.user {
			out = append(out, Member{UserID: pc.user})
		}
		m := &out[len(out)-1]
		m.Clients++
		if m.Info == nil && pc.chanInfo != nil {
			m.Info = slices.Clone(pc.chanInfo)
		}
	}
	return out, nil
}

// loggedIn keeps, in place, the clients that have a user, sorted by user
// and client, with nil for an empty or "null" info.
func loggedIn(clients []presenceClient) []presenceClient {
	clients = slices.DeleteFunc(clients, func(pc presenceClient) bool { return pc.user == "" })
	for k, pc := range clients {
		if len(pc.chanInfo) == 0 || string(pc.chanInfo) == "null" {
			clients[k].chanInfo = nil
		}
	}
	slices.SortFunc(clients, func(a, b presenceClient) int {
		return cmp.Or(strings.Compare(a.user, b.user), strings.Compare(a.client, b.client))
	})
	return clients
}

const (
	maxPresenceChannels = 20        // channels a presence request
	maxPresenceListed   = 100       // subscriptions listed a channel
	maxPresenceBytes    = 256 << 10 // listed subscriptions an answer, encoded
)

type routeClient struct {
	Client string          `json:"client"`
	User   string          `json:"user"`
	Info   json.RawMessage `json:"info,omitempty"`
}

type presenceAnswer struct {
	Channel   string        `json:"channel"`
	Clients   []routeClient `json:"clients,omitzero"`
	Total     int           `json:"total,omitempty"`
	Truncated bool          `json:"truncated,omitempty"`
	Status    int           `json:"status,omitempty"`
}

// presenceRoute asks the server about every allowed channel in one call.
func (i *Instant) presenceRoute(c *gin.Context, body []byte) {
	var req struct {
		Channels []string `json:"channels"`
	}
	switch {
	case !decodeBody(c, body, &req):
		return
	case len(req.Channels) == 0:
		abortJSON(c, http.StatusBadRequest, "instant: no channels")
		return
	case len(req.Channels) > maxPresenceChannels:
		abortJSON(c, http.StatusBadRequest, "instant: at most 20 channels a presence request")
		return
	}
	for _, ch := range req.Channels {
		if err := validChannel(ch); err != nil {
			refuse(c, err)
			return
		}
	}
	u, ok := i.connectingUser(c)
	if !ok {
		return
	}
	out := make([]presenceAnswer, len(req.Channels))
	var asked []string
	for k, ch := range req.Channels {
		out[k].Channel = ch
		if u == nil || !isPrivate(ch) {
			out[k].Status = http.StatusForbidden
		} else if _, err := i.decide(c, u, ch); err != nil {
			out[k].Status = errorStatus(err)
		} else if !slices.Contains(asked, ch) {
			asked = append(asked, ch)
		}
	}
	var lists [][]presenceClient
	var err error
	if len(asked) > 0 {
		err = i.call(c.Request.Context(), func(ctx context.Context, api apiClient) (err error) {
			lists, err = api.presenceBatch(ctx, asked)
			return err
		})
	}
	if err != nil {
		i.cfg.Logger.Error("instant: presence failed", "error", err, "path", requestPath(c))
		server, status, msg := "centrifugo", http.StatusBadGateway, " did not answer the presence call"
		if i.cfg.Server != nil {
			server = "the embedded server"
		}
		if pe := (*PublishError)(nil); errors.As(err, &pe) && pe.Code != 0 { // presence off, or an unknown namespace
			status, msg = http.StatusServiceUnavailable, " refused the presence call (is presence on in its config?)"
		}
		abortJSON(c, status, "instant: "+server+msg)
		return
	}
	budget := maxPresenceBytes
	for k := range out {
		a := &out[k]
		if a.Status != 0 {
			continue
		}
		n := slices.Index(asked, a.Channel)
		lists[n] = loggedIn(lists[n]) // again, for a channel named twice: the same
		all := lists[n]
		a.Total, a.Clients = len(all), make([]routeClient, 0, min(len(all), maxPresenceListed))
		for _, pc := range all {
			rc := routeClient{Client: pc.client, User: pc.user, Info: pc.chanInfo}
			enc, err := json.Marshal(rc) // as c.JSON writes it, and a comma
			if a.Truncated = len(a.Clients) == maxPresenceListed || err != nil || len(enc)+1 > budget; a.Truncated {
				break
			}
			budget -= len(enc) + 1
			rc.Info = slices.Clone(rc.Info)
			a.Clients = append(a.Clients, rc)
		}
	}
	c.JSON(http.StatusOK, gin.H{"channels": out})
}
