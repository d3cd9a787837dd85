package instant

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
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

// presenceCount counts a channel's subscribers: Clients subscriptions
// from Users distinct users.
type presenceCount struct {
	Clients int `json:"clients"`
	Users   int `json:"users"`
}

// presenceClient is one subscription as Centrifugo's presence call
// reports it. connInfo is not read: connection tokens carry no info, and
// a member's info is what its subscription to the channel carries.
type presenceClient struct {
	user               string
	connInfo, chanInfo json.RawMessage
}

// Presence lists the users subscribed to channel, one Member per user,
// sorted by UserID. Anonymous subscriptions are not listed. The channel
// must have presence on (CentrifugoOptions.Presence). Errors as
// Broadcast's (ErrInvalidChannel for a bad name); within
// Config.PublishTimeout.
func (i *Instant) Presence(ctx context.Context, channel string) ([]Member, error) {
	if i == nil {
		return nil, ErrNotInstalled
	}
	if err := validChannel(channel); err != nil {
		return nil, err
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

// presenceStats counts the subscriptions to channel and their distinct
// users (anonymous subscriptions count as one user with an empty ID). The
// channel must have presence on.
func (i *Instant) presenceStats(ctx context.Context, channel string) (presenceCount, error) {
	if i == nil {
		return presenceCount{}, ErrNotInstalled
	}
	if err := validChannel(channel); err != nil {
		return presenceCount{}, err
	}
	var stats presenceCount
	err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
		stats, err = api.presenceStats(ctx, channel)
		return err
	})
	return stats, err
}
