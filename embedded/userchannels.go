package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/centrifugal/centrifuge"
)

// UserChannels returns, sorted, the channels user is subscribed to on any
// connection in any process: on Redis it surveys every process it knows of
// and waits at most a second (less if ctx says so). Processes that do not
// answer in time (one that died within some 10 seconds, one that hangs)
// are left out, with a warning; a subscription held only there lasts until
// its token expires. A process started less than 3 seconds ago may not
// know the others yet. When ctx ends first, the error is ctx's.
func (s *Server) UserChannels(ctx context.Context, user string) ([]string, error) {
	sctx, cancel := context.WithTimeout(ctx, surveyTimeout)
	defer cancel()
	results, err := s.node.Survey(sctx, userChannelsOp, []byte(user), "")
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		known := 0
		if info, err := s.node.Info(); err == nil {
			known = len(info.Nodes)
		}
		s.logger.Warn("embedded: some processes did not say which channels the user reads; only the answers are used",
			"answered", len(results), "processes", known, "waited", surveyTimeout)
	case err != nil:
		return nil, fmt.Errorf("embedded: asking the processes for the user's channels: %w", err)
	}
	var out []string
	for _, r := range results {
		var chs []string
		if r.Code == 0 && json.Unmarshal(r.Data, &chs) == nil {
			out = append(out, chs...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// onSurvey answers UserChannels with the channels of the user's
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
	data, _ := json.Marshal(chs)
	cb(centrifuge.SurveyReply{Data: data})
}
