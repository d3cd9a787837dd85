package embedded

// Which channels a user reads, in every process: Reauthorize's question.
// Each process knows its own connections (the hub); a survey asks the
// others over Redis.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/centrifugal/centrifuge"
)

const (
	// userChannelsOp is the survey UserChannels sends.
	userChannelsOp = "instant.user_channels"
	// surveyTimeout bounds how long UserChannels waits for the other
	// processes (an answer takes milliseconds).
	surveyTimeout = time.Second
)

// UserChannels returns the channels user is subscribed to on any of their
// connections, in every process, sorted. On Redis it asks every process
// it knows of and waits at most a second (less when ctx says so) for
// their answers. A process that does not answer in time (one that just
// died is still counted for some 10 seconds; one that hangs) is left
// out: the channels of the processes that answered are returned, with a
// warning logged naming how many did not, and a subscription held only
// there lasts until its token expires and is not renewed (at most the
// Instant's SubscriptionTokenTTL and 10 seconds). A process started less
// than 3 seconds ago may not know the others yet. When ctx ends first,
// the error is ctx's.
func (s *Server) UserChannels(ctx context.Context, user string) ([]string, error) {
	sctx, cancel := context.WithTimeout(ctx, surveyTimeout)
	defer cancel()
	results, err := s.node.Survey(sctx, userChannelsOp, []byte(user), "")
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("embedded: asking the processes for the user's channels: %w", err)
		}
		known := 0
		if info, err := s.node.Info(); err == nil {
			known = len(info.Nodes)
		}
		s.logger.Warn("embedded: some processes did not say which channels the user reads; only the answers are used",
			slog.Int("answered", len(results)), slog.Int("processes", known), slog.Duration("waited", surveyTimeout))
	}
	var out []string
	for _, r := range results {
		var chs []string
		if r.Code != 0 || json.Unmarshal(r.Data, &chs) != nil {
			continue // no process of ours answers so
		}
		out = append(out, chs...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// onSurvey answers UserChannels' survey with the channels of the user's
// connections in this process.
func (s *Server) onSurvey(e centrifuge.SurveyEvent, cb centrifuge.SurveyCallback) {
	if e.Op != userChannelsOp {
		cb(centrifuge.SurveyReply{Code: 1})
		return
	}
	chs := []string{}
	for _, c := range s.node.Hub().UserConnections(string(e.Data)) {
		chs = append(chs, c.Channels()...)
	}
	slices.Sort(chs)
	data, _ := json.Marshal(slices.Compact(chs))
	cb(centrifuge.SurveyReply{Data: data})
}
