package instant

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/centrifugal/gocent/v3"
)

// apiClient is the one seam to a realtime server: gocentAPI, serverAPI, or downNodes (every node down).
type apiClient interface {
	// publish sends payloads[k] to channels[k], key keys[k], tag "origin" origins[k], in order; failedPubs lists the refused.
	publish(ctx context.Context, channels []string, payloads [][]byte, keys, origins []string) error
	disconnect(ctx context.Context, user string) error
	presenceBatch(ctx context.Context, channels []string) ([][]presenceClient, error)
	channels(ctx context.Context, pattern string) ([]string, error)
	holders(ctx context.Context, user string, channels []string) (held []string, unknowable bool, err error)
	unsubscribeAll(ctx context.Context, user string, channels []string) (refused int, err error)
	userChannels(ctx context.Context, user string) (channels []string, known bool, err error)
}

// gocentAPI is one Centrifugo node's apiClient: gocent, and publish's own request (keys, tags).
type gocentAPI struct {
	*nodeState
	addr, key string
	base      *http.Client // Config.HTTPClient
	hc        *http.Client // publish's, replies bounded by maxReplyBody
	auth      []string     // the Authorization header
	secrets   [][]byte     // never to appear in an error
}

func newGocentAPI(addr, key string, hc *http.Client, secrets []string) *gocentAPI {
	g := gocentAPI{nodeState: new(nodeState), addr: addr, key: key, base: hc, hc: limitedClient(hc, maxReplyBody, nil)}
	if key != "" {
		g.auth = []string{"apikey " + key}
	}
	for _, s := range secrets {
		if s != "" {
			g.secrets = append(g.secrets, []byte(s))
		}
	}
	return &g
}

// publishParams are a publish command's, in a request or an outbox row.
type publishParams struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	Key     string          `json:"idempotency_key,omitempty"`
	Tags    publishTags     `json:"tags,omitzero"`
}

type publishTags struct {
	Origin string `json:"origin"`
}

// publish posts the commands to /api/batch, which runs them in order and answers a reply each.
func (g gocentAPI) publish(ctx context.Context, channels []string, payloads [][]byte, keys, origins []string) error {
	cmds := make([]struct {
		Publish publishParams `json:"publish"`
	}, len(channels))
	for k := range cmds {
		cmds[k].Publish = publishParams{channels[k], payloads[k], keys[k], publishTags{origins[k]}}
	}
	body, _ := json.Marshal(map[string]any{"commands": cmds})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.addr+"/batch", bytes.NewReader(body)) // neither fails: valid JSON, APIURL checked by New
	req.Header = http.Header{"Authorization": g.auth, "Content-Type": {"application/json"}}
	resp, err := g.hc.Do(req)
	if err != nil {
		return g.apiError("publish", channels, err)
	}
	limit := smallReply + int64(len(channels))*publishReply
	reply, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // the status is the answer, whatever the body
		return g.apiError("publish", channels, gocent.ErrStatusCode{Code: resp.StatusCode, Body: reply}, retryAfter(resp.Header))
	}
	if err != nil || int64(len(reply)) > limit {
		return g.apiError("publish", channels, cmp.Or[error](err, &http.MaxBytesError{}))
	}
	var answer struct {
		Replies []struct {
			Error   *gocent.Error `json:"error"`
			Publish *struct{}     `json:"publish"`
		} `json:"replies"`
	}
	if json.Unmarshal(reply, &answer) != nil || len(answer.Replies) != len(channels) {
		return &PublishError{Op: "publish", Channels: channels, Err: errNotAPI}
	}
	var failed []int
	var names []string
	for k, r := range answer.Replies {
		if r.Error != nil {
			failed, names = append(failed, k), append(names, channels[k])
		} else if r.Publish == nil {
			return &PublishError{Op: "publish", Channels: channels, Err: errNotAPI}
		}
	}
	if failed == nil {
		return nil
	}
	pe := g.apiError("publish", names, answer.Replies[failed[0]].Error).(*PublishError)
	pe.failedPubs = failed
	return pe
}

// gc is a gocent client for one call, its replies bounded by limit and a
// 429's or 503's Retry-After written to *wait.
func (g gocentAPI) gc(limit int64, wait *time.Duration) *gocent.Client {
	return gocent.New(gocent.Config{Addr: g.addr, Key: g.key, HTTPClient: limitedClient(g.base, limit, wait)})
}

// retryAfter reads a Retry-After (seconds, or a date), at most a day.
func retryAfter(h http.Header) time.Duration {
	const most = 24 * time.Hour
	v := h.Get("Retry-After")
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return time.Duration(min(n, uint64(most/time.Second))) * time.Second
	}
	t, _ := http.ParseTime(v) // the zero time if v is no date: no wait
	return max(0, min(time.Until(t), most))
}

var errNotAPI = errors.New("the reply is not an answer of Centrifugo's server API: is APIURL its /api endpoint?")

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) >= 2 && raw[0] == '{' && json.Valid(raw)
}

func (g gocentAPI) unsubscribe(ctx context.Context, channel, user string) error {
	var wait time.Duration
	return g.apiError("unsubscribe", []string{channel}, g.gc(smallReplies, &wait).Unsubscribe(ctx, channel, user), wait)
}

func (g gocentAPI) disconnect(ctx context.Context, user string) error {
	var wait time.Duration
	reconnect := gocent.WithDisconnect(&gocent.Disconnect{Code: 4001, Reason: "session changed", Reconnect: true})
	return g.apiError("disconnect", nil, g.gc(smallReplies, &wait).Disconnect(ctx, user, reconnect), wait)
}

func (g gocentAPI) info(ctx context.Context) error {
	var wait time.Duration
	_, err := g.gc(smallReplies, &wait).Info(ctx)
	return g.apiError("info", nil, err, wait)
}

func (g gocentAPI) presenceBatch(ctx context.Context, channels []string) ([][]presenceClient, error) {
	var wait time.Duration
	c := g.gc(maxReplyBody, &wait)
	pipe := c.Pipe()
	for _, ch := range channels {
		_ = pipe.AddPresence(ch) // it encodes a string: never fails
	}
	replies, err := c.SendPipe(ctx, pipe)
	if err != nil {
		return nil, g.apiError("presence", channels, err, wait)
	}
	out := make([][]presenceClient, len(channels))
	for k, r := range replies {
		if r.Error != nil {
			return nil, g.apiError("presence", channels[k:k+1], r.Error)
		}
		var res gocent.PresenceResult
		if !isObject(r.Result) || json.Unmarshal(r.Result, &res) != nil {
			return nil, &PublishError{Op: "presence", Channels: channels[k : k+1], Err: errNotAPI}
		}
		out[k] = make([]presenceClient, 0, len(res.Presence))
		for id, ci := range res.Presence {
			out[k] = append(out[k], presenceClient{client: cmp.Or(ci.Client, id), user: ci.User, chanInfo: ci.ChanInfo})
		}
	}
	return out, nil
}

func (g gocentAPI) channels(ctx context.Context, pattern string) ([]string, error) {
	var wait time.Duration
	res, err := g.gc(maxReplyBody, &wait).Channels(ctx, gocent.WithPattern(pattern)) // "" is omitted: every channel
	if err != nil {
		return nil, g.apiError("channels", nil, err, wait)
	}
	return slices.Collect(maps.Keys(res.Channels)), nil
}

// unsubscribeAll counts Centrifugo's refusals, returning the first.
func (g gocentAPI) unsubscribeAll(ctx context.Context, user string, channels []string) (refused int, err error) {
	var wait time.Duration
	c := g.gc(smallReplies, &wait)
	pipe := c.Pipe()
	for _, ch := range channels {
		_ = pipe.AddUnsubscribe(ch, user) // it encodes strings: never fails
	}
	replies, err := c.SendPipe(ctx, pipe)
	if err != nil {
		return 0, g.apiError("unsubscribe", nil, err, wait)
	}
	var first error
	for k, r := range replies {
		switch {
		case r.Error != nil:
			if refused++; first == nil {
				first = g.apiError("unsubscribe", []string{channels[k]}, r.Error)
			}
		case !isObject(r.Result):
			return 0, &PublishError{Op: "unsubscribe", Err: errNotAPI}
		}
	}
	return refused, first
}

// holders: a channel without presence (error 108) makes it unknowable.
func (g gocentAPI) holders(ctx context.Context, user string, channels []string) ([]string, bool, error) {
	lists, err := g.presenceBatch(ctx, channels)
	if pe := (*PublishError)(nil); errors.As(err, &pe) && pe.Code == codeNotAvailable {
		return nil, true, nil
	} else if err != nil {
		return nil, false, err
	}
	var held []string
	for k, clients := range lists {
		if slices.ContainsFunc(clients, func(c presenceClient) bool { return c.user == user }) {
			held = append(held, channels[k])
		}
	}
	return held, false, nil
}

// userChannels: Centrifugo's API does not say what a user reads.
func (g gocentAPI) userChannels(context.Context, string) ([]string, bool, error) {
	return nil, false, nil
}

// apiError makes err a *PublishError (nil stays nil) of at most maxErrorBody
// bytes of a reply, no secret; a 429 or 503 carries the wait its answer asked.
func (g gocentAPI) apiError(op string, channels []string, err error, wait ...time.Duration) error {
	if err == nil {
		return nil
	}
	pe := &PublishError{Op: op, Channels: channels}
	var status gocent.ErrStatusCode
	var apiErr *gocent.Error
	switch {
	case errors.As(err, &status):
		pe.StatusCode = status.Code
		if len(wait) > 0 && (status.Code == http.StatusTooManyRequests || status.Code == http.StatusServiceUnavailable) {
			pe.retryAfter = wait[0]
		}
		pe.Err = fmt.Errorf("http status %d: %s", status.Code, g.redact(status.Body))
	case errors.As(err, &apiErr):
		pe.Code, pe.Message = apiErr.Code, string(g.redact([]byte(apiErr.Message)))
		pe.Err = fmt.Errorf("centrifugo error %d: %s", pe.Code, pe.Message)
	case errors.Is(err, gocent.ErrMalformedResponse):
		pe.Err = errNotAPI
	case errors.As(err, new(*http.MaxBytesError)):
		pe.Err = errReplyTooLarge
	default:
		pe.Err = g.redactError(err)
	}
	return pe
}

// redact returns b cut to maxErrorBody bytes, its secrets replaced.
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

// redactError replaces err by its redacted text if it holds a secret, keeping the context's errors.
func (g gocentAPI) redactError(err error) error {
	text := []byte(err.Error())
	if !slices.ContainsFunc(g.secrets, func(s []byte) bool { return bytes.Contains(text, s) }) {
		return err
	}
	for _, cause := range []error{context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, cause) {
			return fmt.Errorf("%s: %w", g.redact(text), cause)
		}
	}
	return errors.New(string(g.redact(text)))
}

const (
	maxErrorBody = 4 << 10  // kept of a reply that is not 200 OK
	maxReplyBody = 32 << 20 // a 200 reply to presence or channels
	smallReplies = 1 << 20  // a 200 reply to gocent's other calls
	smallReply   = 8 << 10  // a 200 reply to publish, plus publishReply
	publishReply = 1 << 10  // a publication
)

var errReplyTooLarge = errors.New("the reply is larger than any Centrifugo answer to this call")

// limitedClient copies hc to read at most limit bytes of a 200 reply, else
// 2*maxErrorBody (redact sees a secret across the cut); the Retry-After of
// any other reply goes to *wait when wait is not nil.
func limitedClient(hc *http.Client, limit int64, wait *time.Duration) *http.Client {
	cp, base := *hc, cmp.Or[http.RoundTripper](hc.Transport, http.DefaultTransport)
	cp.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err == nil && wait != nil && resp.StatusCode != http.StatusOK {
			*wait = retryAfter(resp.Header)
		}
		if err == nil && resp.Body != nil && resp.StatusCode != http.StatusOK {
			resp.Body = http.MaxBytesReader(nil, resp.Body, 2*maxErrorBody)
		} else if err == nil && resp.Body != nil {
			resp.Body = http.MaxBytesReader(nil, resp.Body, limit)
		}
		return resp, err
	})
	return &cp
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
