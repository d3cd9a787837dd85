package instant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/centrifugal/gocent/v3"
)

// gocentAPI is the apiClient over gocent/v3, which speaks Centrifugo's
// /api endpoint, and over the publish request of publish_api.go, which
// gocent cannot write. Replacing the client means replacing these two
// files.
type gocentAPI struct {
	c        *gocent.Client
	batchURL string       // APIURL + "/batch" (publish_api.go)
	auth     []string     // the Authorization header: "apikey <key>"
	hc       *http.Client // gocent's too
	secrets  [][]byte     // never to appear in an error
}

func newGocentAPI(addr, key string, hc *http.Client, secrets []string) apiClient {
	g := gocentAPI{c: gocent.New(gocent.Config{Addr: addr, Key: key, HTTPClient: hc}), batchURL: addr + "/batch", hc: hc}
	if key != "" {
		g.auth = []string{"apikey " + key} // as gocent sends it
	}
	for _, s := range secrets {
		if s != "" {
			g.secrets = append(g.secrets, []byte(s))
		}
	}
	return g
}

// errNoResult marks a 200 reply that is not a publish result: something
// other than Centrifugo's API answered, and nothing was published.
var errNoResult = errors.New("the reply holds no publish result: is APIURL Centrifugo's /api endpoint?")

// statusErr and refusalErr are the errors of an HTTP status other than
// 200 and of an API error in a reply, as gocent's calls return them, for
// apiError.
func statusErr(code int, body []byte) error { return gocent.ErrStatusCode{Code: code, Body: body} }

func refusalErr(code int, message string) error {
	return &gocent.Error{Code: code, Message: message}
}

// isObject reports whether raw is a JSON object, as every result of
// Centrifugo's API is.
func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) >= 2 && raw[0] == '{' && json.Valid(raw)
}

func (g gocentAPI) unsubscribe(ctx context.Context, channel, user string) error {
	ctx = withReplyLimit(ctx, smallReply)
	return g.apiError("unsubscribe", []string{channel}, g.c.Unsubscribe(ctx, channel, user))
}

// reconnectDisconnect is in the range Centrifugo clients reconnect after
// (4000-4499): they ask the routes for a new token, so they come back as
// whoever the session holds now.
var reconnectDisconnect = &gocent.Disconnect{Code: 4001, Reason: "session changed", Reconnect: true}

func (g gocentAPI) disconnect(ctx context.Context, user string) error {
	ctx = withReplyLimit(ctx, smallReply)
	return g.apiError("disconnect", nil, g.c.Disconnect(ctx, user, gocent.WithDisconnect(reconnectDisconnect)))
}

func (g gocentAPI) history(ctx context.Context, channel string, limit int) ([]json.RawMessage, error) {
	res, err := g.c.History(ctx, channel, gocent.WithLimit(limit))
	if err != nil {
		return nil, g.apiError("history", []string{channel}, err)
	}
	out := make([]json.RawMessage, len(res.Publications))
	for k, p := range res.Publications {
		out[k] = json.RawMessage(p.Data)
	}
	return out, nil
}

func (g gocentAPI) presence(ctx context.Context, channel string) ([]presenceClient, error) {
	res, err := g.c.Presence(ctx, channel)
	if err != nil {
		return nil, g.apiError("presence", []string{channel}, err)
	}
	out := make([]presenceClient, 0, len(res.Presence))
	for _, ci := range res.Presence {
		out = append(out, presenceClient{user: ci.User, chanInfo: ci.ChanInfo})
	}
	return out, nil
}

func (g gocentAPI) presenceStats(ctx context.Context, channel string) (presenceCount, error) {
	ctx = withReplyLimit(ctx, smallReply)
	res, err := g.c.PresenceStats(ctx, channel)
	if err != nil {
		return presenceCount{}, g.apiError("presence_stats", []string{channel}, err)
	}
	return presenceCount{Clients: int(res.NumClients), Users: int(res.NumUsers)}, nil
}

// apiError wraps an error of gocent's in a *PublishError (nil stays nil).
// The error it keeps holds at most maxErrorBody bytes of a reply, with the
// API key and the token secret blanked out, whatever the upstream echoed.
func (g gocentAPI) apiError(op string, channels []string, err error) error {
	if err == nil {
		return nil
	}
	pe := &PublishError{Op: op, Channels: channels}
	var status gocent.ErrStatusCode
	var apiErr *gocent.Error
	// The causes gocent reports become plain errors of their text: the
	// API speaks only of this package's names (PublishError's fields hold
	// what the caller may test).
	switch {
	case errors.As(err, &status):
		pe.StatusCode = status.Code
		pe.Err = fmt.Errorf("http status %d: %s", status.Code, g.redact(status.Body))
	case errors.As(err, &apiErr):
		msg := string(g.redact([]byte(apiErr.Message)))
		pe.Code, pe.Message = apiErr.Code, msg
		pe.Err = fmt.Errorf("centrifugo error %d: %s", apiErr.Code, msg)
	case errors.Is(err, gocent.ErrMalformedResponse):
		pe.Err = errors.New("the reply is not an answer of Centrifugo's server API")
	default:
		pe.Err = g.redactError(err)
	}
	return pe
}

// redact returns a copy of b cut to maxErrorBody bytes, with every secret
// replaced.
func (g gocentAPI) redact(b []byte) []byte {
	out := bytes.Clone(b)
	for _, s := range g.secrets {
		out = bytes.ReplaceAll(out, s, []byte("[redacted]"))
	}
	if len(out) > maxErrorBody {
		out = append(out[:maxErrorBody:maxErrorBody], "…"...)
	}
	return out
}

// redactError keeps err when its text holds no secret, and otherwise
// replaces it by its redacted text (errors.Is still finds the context's
// errors).
func (g gocentAPI) redactError(err error) error {
	text := []byte(err.Error())
	for _, s := range g.secrets {
		if bytes.Contains(text, s) {
			cause := error(nil)
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				cause = context.DeadlineExceeded
			case errors.Is(err, context.Canceled):
				cause = context.Canceled
			}
			if cause != nil {
				return fmt.Errorf("%s: %w", g.redact(text), cause)
			}
			return errors.New(string(g.redact(text)))
		}
	}
	return err
}

// Bounds of what the API client reads of a reply.
const (
	// maxErrorBody is what is kept of a reply that is not 200 OK.
	maxErrorBody = 4 << 10
	// maxReplyBody bounds a 200 reply to a call that can answer much
	// (history, presence).
	maxReplyBody = 32 << 20
	// smallReply bounds a 200 reply to a call whose result is a few bytes
	// (unsubscribe, disconnect, presence stats), and publishReply adds to
	// it for each publication of a publish (whose result is an offset and
	// an epoch). A hostile upstream answering a publish with millions of
	// tiny replies is cut there, before they are decoded.
	smallReply   = 8 << 10
	publishReply = 1 << 10
)

// errReplyTooLarge is the error of reading a reply past its bound: an
// answer, not a missing one, so it is not retried.
var errReplyTooLarge = errors.New("the reply is larger than any Centrifugo answer to this call")

type replyLimitKey struct{}

// withReplyLimit bounds the 200 reply to the calls made with ctx.
func withReplyLimit(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, replyLimitKey{}, n)
}

// limitedClient returns a copy of hc (the caller's is not changed) whose
// replies are read at most up to maxErrorBody (errors) or their call's
// bound (withReplyLimit; maxReplyBody without one), so that a hostile or
// broken upstream cannot make the plugin hold a huge body.
func limitedClient(hc *http.Client) *http.Client {
	cp := *hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cp.Transport = limitTransport{base}
	return &cp
}

type limitTransport struct{ base http.RoundTripper }

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	limit := int64(maxReplyBody)
	if n, ok := req.Context().Value(replyLimitKey{}).(int64); ok {
		limit = n
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		noteRetryAfter(req.Context(), resp.Header.Get("Retry-After"))
	}
	if resp.StatusCode != http.StatusOK {
		// Twice what is kept, so that a secret across the cut is still
		// whole when redact looks for it.
		limit = 2 * maxErrorBody
	}
	resp.Body = &cappedBody{body: resp.Body, left: limit}
	return resp, nil
}

// cappedBody reads at most left bytes of body, and then fails with
// errReplyTooLarge if body holds more.
type cappedBody struct {
	body io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.body.Read(one[:])
		if n > 0 {
			return 0, errReplyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.body.Close() }

// errNoPresence marks a 200 reply to a presence call that is not a
// presence result.
var errNoPresence = errors.New("the reply holds no presence result: is APIURL Centrifugo's /api endpoint?")

// presenceBatch asks the presence of every channel of channels in one
// request (a pipe of presence calls), and answers each channel's
// subscriptions, their client ids included. An API error for any channel
// fails the whole call.
func (g gocentAPI) presenceBatch(ctx context.Context, channels []string) ([][]presenceClient, error) {
	pipe := g.c.Pipe()
	for _, ch := range channels {
		if err := pipe.AddPresence(ch); err != nil {
			return nil, &PublishError{Op: "presence", Channels: channels, Err: err}
		}
	}
	replies, err := g.c.SendPipe(ctx, pipe)
	if err != nil {
		return nil, g.apiError("presence", channels, err)
	}
	out := make([][]presenceClient, len(channels))
	for k, r := range replies {
		if r.Error != nil {
			return nil, g.apiError("presence", channels[k:k+1], r.Error)
		}
		var res gocent.PresenceResult
		if !isObject(r.Result) || json.Unmarshal(r.Result, &res) != nil {
			return nil, &PublishError{Op: "presence", Channels: channels[k : k+1], Err: errNoPresence}
		}
		clients := make([]presenceClient, 0, len(res.Presence))
		for id, ci := range res.Presence {
			if ci.Client == "" {
				ci.Client = id
			}
			clients = append(clients, presenceClient{client: ci.Client, user: ci.User, chanInfo: ci.ChanInfo})
		}
		out[k] = clients
	}
	return out, nil
}

// The calls below serve Reauthorize and the access records (reauth.go).

// channels lists the channels that have subscribers on any node of the
// cluster (Centrifugo's channels call, a survey of every node) whose names
// match pattern, a glob ("" for all).
func (g gocentAPI) channels(ctx context.Context, pattern string) ([]string, error) {
	var opts []gocent.ChannelsOption
	if pattern != "" {
		opts = append(opts, gocent.WithPattern(pattern))
	}
	res, err := g.c.Channels(ctx, opts...)
	if err != nil {
		return nil, g.apiError("channels", nil, err)
	}
	out := make([]string, 0, len(res.Channels))
	for ch := range res.Channels {
		out = append(out, ch)
	}
	return out, nil
}

// unsubscribeAll unsubscribes user from each of channels (on every
// connection and node), all in one request, and reports how many
// Centrifugo refused, with the first refusal. A transport failure refuses
// them all.
func (g gocentAPI) unsubscribeAll(ctx context.Context, user string, channels []string) (refused int, err error) {
	ctx = withReplyLimit(ctx, smallReply+int64(len(channels))*publishReply)
	pipe := g.c.Pipe()
	for _, ch := range channels {
		if err := pipe.AddUnsubscribe(ch, user); err != nil {
			return len(channels), &PublishError{Op: "unsubscribe", Err: err}
		}
	}
	replies, err := g.c.SendPipe(ctx, pipe)
	if err != nil {
		return len(channels), g.apiError("unsubscribe", nil, err)
	}
	var first error
	for k, r := range replies {
		switch {
		case r.Error != nil:
			refused++
			if first == nil {
				first = g.apiError("unsubscribe", []string{channels[k]}, r.Error)
			}
		case !isObject(r.Result):
			return len(channels), &PublishError{Op: "unsubscribe", Err: errNoResult}
		}
	}
	return refused, first
}

// historyPage reads up to limit publications of channel's history (0: none,
// only the position), after since when it is given, newest first when
// reverse, and the stream's current position.
func (g gocentAPI) historyPage(ctx context.Context, channel string, limit int, since *streamPosition, reverse bool) ([]streamPub, streamPosition, error) {
	opts := []gocent.HistoryOption{gocent.WithLimit(limit), gocent.WithReverse(reverse)}
	if since != nil {
		opts = append(opts, gocent.WithSince(&gocent.StreamPosition{Offset: since.offset, Epoch: since.epoch}))
	}
	res, err := g.c.History(ctx, channel, opts...)
	if err != nil {
		return nil, streamPosition{}, g.apiError("history", []string{channel}, err)
	}
	out := make([]streamPub, len(res.Publications))
	for k, p := range res.Publications {
		out[k] = streamPub{offset: p.Offset, data: p.Data}
	}
	return out, streamPosition{offset: res.Offset, epoch: res.Epoch}, nil
}
