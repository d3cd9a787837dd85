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

// Member is one user present on a channel: all of that user's
// subscriptions (tabs, devices) together.
type Member struct {
	// UserID is the user's ID, the tokens' "sub".
	UserID string `json:"user_id"`
	// Info is what the user's subscription token for this channel carried
	// as presence info (the rule's info, else User.Info), as JSON; empty
	// when none. Never the connection's info, which Centrifugo hands to
	// every channel.
	Info json.RawMessage `json:"info,omitempty"`
	// Clients counts the user's subscriptions to the channel.
	Clients int `json:"clients"`
}

// presenceClient is one subscription as Centrifugo's presence call
// reports it: a member's info is what its subscription to the channel
// carries (connection tokens carry none). client is the subscription's
// client id (only presenceBatch fills it in).
type presenceClient struct {
	client, user string
	chanInfo     json.RawMessage
}

// Presence lists the users subscribed to channel, one Member per user,
// sorted by UserID. Anonymous subscriptions are not listed. The channel
// must be private and have presence on (CentrifugoOptions.Presence): a
// public channel shows no presence to anyone, the app included
// (ErrInvalidChannel), since its readers subscribe without a token and
// never agreed to be listed. Errors as Broadcast's (ErrInvalidChannel for
// a bad name); within Config.PublishTimeout.
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
	var clients []presenceClient
	err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
		clients, err = api.presence(ctx, channel)
		return err
	})
	if err != nil {
		return nil, err
	}
	byUser := map[string]*Member{}
	for _, pc := range clients {
		if pc.user == "" {
			continue
		}
		m := byUser[pc.user]
		if m == nil {
			m = &Member{UserID: pc.user}
			byUser[pc.user] = m
		}
		m.Clients++
		if m.Info == nil && len(pc.chanInfo) > 0 && string(pc.chanInfo) != "null" {
			m.Info = slices.Clone(pc.chanInfo)
		}
	}
	out := make([]Member, 0, len(byUser))
	for _, m := range byUser {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

// maxPresenceChannels is the most channels one request to the presence
// route may name: each is a presence call of Centrifugo's (all of them in
// one request to it), whose answer lists every subscriber.
const maxPresenceChannels = 20

// routeClient is one subscription of a channel as the presence route
// answers it: the ids of its client and user, and the info its token
// carries for the channel (none when it carries none).
type routeClient struct {
	Client string          `json:"client"`
	User   string          `json:"user"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// maxPresenceListed is the most subscriptions the presence route lists
// for one channel: a page shows who is there, not a directory, and the
// answer would otherwise grow with the members (500 of them: 148 KB for
// a 224-byte request).
const maxPresenceListed = 100

// maxPresenceBytes bounds the subscriptions listed in one answer of the
// presence route, all its channels together, as encoded (ids and infos:
// an info may be large). With the channels' names around them, an answer
// stays under about 262 KiB.
const maxPresenceBytes = 256 << 10

// presenceAnswer is one channel of the presence route's answer: its
// subscriptions, or the status of its refusal. Total counts the
// channel's logged-in subscriptions, listed or not (omitted when none);
// Truncated says that Clients lists only the first of them, cut by
// maxPresenceListed or maxPresenceBytes.
type presenceAnswer struct {
	Channel   string        `json:"channel"`
	Clients   []routeClient `json:"clients,omitzero"`
	Total     int           `json:"total,omitempty"`
	Truncated bool          `json:"truncated,omitempty"`
	Status    int           `json:"status,omitempty"`
}

// presenceRoute answers POST presence {"channels":[...]}: for each channel
// (at most maxPresenceChannels), the logged-in subscriptions to it,
// {"channel","clients":[{"client","user","info"}],"total"}, or {"channel",
// "status":403}. The answer is bounded: at most maxPresenceListed
// subscriptions a channel (the first by user, then client) and
// maxPresenceBytes of them in all, a channel cut short saying
// "truncated":true, with "total" counting them all. A channel is
// answered only when it is private and the
// decision lets the user read it; public channels show no presence, and an
// anonymous visitor gets none at all. Centrifugo is asked about every
// answered channel in one request; a failure of it is a 502 (no answer)
// or 503 (Centrifugo refused: presence off), logged once.
func (i *Instant) presenceRoute(c *gin.Context, body []byte) {
	var req struct {
		Channels []string `json:"channels"`
	}
	if !decodeBody(c, body, &req) {
		return
	}
	switch {
	case len(req.Channels) == 0:
		abortJSON(c, http.StatusBadRequest, "instant: no channels")
		return
	case len(req.Channels) > maxPresenceChannels:
		abortJSON(c, http.StatusBadRequest, "instant: at most 20 channels a presence request")
		return
	}
	for _, ch := range req.Channels {
		if err := validChannel(ch); err != nil {
			i.refuse(c, err)
			return
		}
	}
	u, ok := i.connectingUser(c)
	if !ok {
		return
	}
	out := make([]presenceAnswer, len(req.Channels))
	var asked []string
	index := map[string]int{} // channel → its place in asked
	for k, ch := range req.Channels {
		out[k].Channel = ch
		if u == nil || !isPrivate(ch) {
			out[k].Status = http.StatusForbidden
			continue
		}
		if _, err := i.decide(c, u, ch); err != nil {
			out[k].Status = errorStatus(err)
			continue
		}
		if _, dup := index[ch]; !dup {
			index[ch] = len(asked)
			asked = append(asked, ch)
		}
	}
	if len(asked) > 0 {
		var lists [][]presenceClient
		err := i.call(c.Request.Context(), func(ctx context.Context, api apiClient) (err error) {
			lists, err = api.presenceBatch(ctx, asked)
			return err
		})
		if err != nil {
			i.presenceFailed(c, err)
			return
		}
		budget := maxPresenceBytes
		for k := range out {
			if n, ok := index[out[k].Channel]; ok && out[k].Status == 0 {
				out[k].Clients, out[k].Total, out[k].Truncated = routeClients(lists[n], &budget)
			}
		}
	}
	c.JSON(http.StatusOK, gin.H{"channels": out})
}

// routeClients lists the logged-in subscriptions of clients (anonymous
// ones are no members), sorted by user and client, each with its info for
// the channel: the first maxPresenceListed of them, as long as their
// encoding fits in what is left of *budget (which it lowers). It returns
// them, how many there are in all, and whether the list was cut.
func routeClients(clients []presenceClient, budget *int) (listed []routeClient, total int, truncated bool) {
	all := make([]presenceClient, 0, len(clients))
	for _, pc := range clients {
		if pc.user != "" {
			all = append(all, pc)
		}
	}
	slices.SortFunc(all, func(a, b presenceClient) int {
		return cmp.Or(strings.Compare(a.user, b.user), strings.Compare(a.client, b.client))
	})
	listed = make([]routeClient, 0, min(len(all), maxPresenceListed))
	for _, pc := range all {
		if len(listed) == maxPresenceListed {
			return listed, len(all), true
		}
		rc := routeClient{Client: pc.client, User: pc.user}
		if len(pc.chanInfo) > 0 && string(pc.chanInfo) != "null" {
			rc.Info = pc.chanInfo
		}
		// As c.JSON will write it (escapes and all), and its comma.
		enc, err := json.Marshal(rc)
		if err != nil || len(enc)+1 > *budget {
			return listed, len(all), true
		}
		*budget -= len(enc) + 1
		rc.Info = slices.Clone(rc.Info)
		listed = append(listed, rc)
	}
	return listed, len(all), false
}

// presenceFailed answers a failed presence call to Centrifugo: 503 when
// it refused (presence is off where the channel is, or its namespace is
// unknown: the config is not CentrifugoConfig's with Presence), else 502,
// and logs it once.
func (i *Instant) presenceFailed(c *gin.Context, err error) {
	i.logger.Error("instant: presence failed", "error", err, "path", requestPath(c))
	var pe *PublishError
	server := "centrifugo"
	if i.server != nil {
		server = "the embedded server"
	}
	if errors.As(err, &pe) && pe.Code != 0 {
		abortJSON(c, http.StatusServiceUnavailable, "instant: "+server+" refused the presence call (is presence on in its config?)")
		return
	}
	abortJSON(c, http.StatusBadGateway, "instant: "+server+" did not answer the presence call")
}
