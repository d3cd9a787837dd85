package instant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/centrifugal/gocent/v3"
)

// apiClient is the part of Centrifugo's server API the plugin uses. It is
// the only seam between the plugin and Centrifugo's server API:
// gocentAPI, below, implements it; downNodes (nodes.go) stands in while
// every node is down.
type apiClient interface {
	// publish sends payloads[k] to channels[k] under the idempotency key
	// keys[k], tagged with the origin origins[k] unless that is "" (origins
	// may be nil: no tags), all in one request, in order. When Centrifugo
	// answered and refused some publications, the error is a *PublishError
	// listing their channels and, in failedPubs, their indices.
	publish(ctx context.Context, channels []string, payloads [][]byte, keys, origins []string) error
	unsubscribe(ctx context.Context, channel, user string) error
	disconnect(ctx context.Context, user string) error
	// info asks the node for Centrifugo's info, which changes nothing:
	// the probe of a node marked down (nodes.go). Only its error counts.
	info(ctx context.Context) error
	presence(ctx context.Context, channel string) ([]presenceClient, error)
	// presenceBatch asks the presence of every channel in one request.
	presenceBatch(ctx context.Context, channels []string) ([][]presenceClient, error)

	// For Reauthorize (reauth.go):
	channels(ctx context.Context, pattern string) ([]string, error)
	// holders answers which of channels user is present in; unknowable
	// when a channel keeps no presence (its namespace has none).
	holders(ctx context.Context, user string, channels []string) (held []string, unknowable bool, err error)
	unsubscribeAll(ctx context.Context, user string, channels []string) (refused int, err error)
	// userChannels answers the channels user is subscribed to, when the
	// server can tell (known): a Server can, Centrifugo's API cannot.
	userChannels(ctx context.Context, user string) (channels []string, known bool, err error)
}

// gocentAPI is the apiClient over gocent/v3, which speaks Centrifugo's
// /api endpoint, and over the publish request written here (publish,
// below), which gocent cannot write. Replacing the client means replacing
// everything in this file but apiClient.
type gocentAPI struct {
	c        *gocent.Client // for the calls that can answer much (presence, channels)
	small    *gocent.Client // for the others (smallReplies)
	batchURL string         // APIURL + "/batch" (publish, below)
	auth     []string       // the Authorization header: "apikey <key>"
	hc       *http.Client   // c's
	secrets  [][]byte       // never to appear in an error
}

// newGocentAPI returns the client of the node at addr, over copies of hc
// (the caller's is not changed) whose replies are bounded (limitedClient).
func newGocentAPI(addr, key string, hc *http.Client, secrets []string) apiClient {
	large := limitedClient(hc, maxReplyBody)
	g := gocentAPI{
		c:        gocent.New(gocent.Config{Addr: addr, Key: key, HTTPClient: large}),
		small:    gocent.New(gocent.Config{Addr: addr, Key: key, HTTPClient: limitedClient(hc, smallReplies)}),
		batchURL: addr + "/batch",
		hc:       large,
	}
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

// The publish request, beside gocent.
//
// Every publication carries its event's id as Centrifugo's idempotency_key,
// so that a publish sent again (a retry after a 502 whose publish did reach
// Centrifugo, a failover past a slow node) is dropped by Centrifugo instead
// of published twice: within its idempotency window (5 minutes), a key it
// has seen on a channel gets the first publish's result back and nothing is
// published. gocent v3.3.0 cannot send the key (its PublishOptions hold
// only skip_history), so this request is made here (its reply decoded
// into typed structs by encoding/json), on the same *http.Client as
// gocent's presence calls, with the same Authorization header and the
// same redaction of secrets in errors; gocent keeps the calls it serves.
//
// The endpoint is Centrifugo v6's /api/batch, beside APIURL (which ends in
// /api), with the same API key check in front:
//
//	{"commands":[{"publish":{"channel":"…","data":{…},"idempotency_key":"…","tags":{"origin":"…"}}},…]}
//
// ("tags" only for an event with an Origin: Centrifugo keeps a
// publication's tags with it and filters on them for subscribers that ask,
// the browser helper's "not my origin"),
//
// answered by {"replies":[{"publish":{…}} or {"error":{"code","message"}},…]},
// one reply a command, in order. Checked in Centrifugo v6.9.1's source:
// every endpoint keeps idempotency_key (the legacy /api JSON-lines format
// that gocent writes, /api/publish and /api/batch all decode the same
// PublishRequest and run the same Executor.Publish, which hands the key to
// the broker). /api/batch is chosen because
//   - it is one request for any number of publications, run one after the
//     other in the order sent (no "parallel"), as the legacy format is;
//     /api/publish takes one publication a request;
//   - it decodes the whole request before running any of it, so a request
//     Centrifugo cannot read publishes nothing (the legacy handler runs
//     each line as it decodes it, and answers 400 after the lines before);
//   - Centrifugo reads it in one json.Unmarshal, where the legacy handler
//     decodes every command twice over: measured here, a batch of 100
//     publications with keys costs Centrifugo 15 to 30% less time than the
//     same batch in the legacy format (which the keys themselves make 15 to
//     25% dearer than without);
//   - the legacy endpoint is to go in Centrifugo v7.

// publish sends payloads[k] to channels[k] with the idempotency key
// keys[k] and the tag "origin" origins[k] (none when "", or when origins
// is nil), all in one request, in order. When Centrifugo answered with an
// API error for some publications, the *PublishError lists their channels
// and their indices (failedPubs).
func (g gocentAPI) publish(ctx context.Context, channels []string, payloads [][]byte, keys, origins []string) error {
	body := appendBatch(channels, payloads, keys, origins)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.batchURL, bytes.NewReader(body))
	if err != nil {
		return &PublishError{Op: "publish", Channels: channels, Err: g.redactError(err)}
	}
	req.Header = http.Header{"Authorization": g.auth, "Content-Type": jsonContentType}
	resp, err := g.hc.Do(req)
	if err != nil {
		return &PublishError{Op: "publish", Channels: channels, Err: g.redactError(err)}
	}
	// A publish result is an offset and an epoch: a reply past a few KiB a
	// publication is not Centrifugo's, and is not read further (a hostile
	// upstream answering with millions of tiny replies once cost 2 GiB of
	// allocations to decode).
	limit := smallReply + int64(len(channels))*publishReply
	reply, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// What was read of the body, even if the connection broke: the
		// status is the answer.
		return g.apiError("publish", channels, statusErr(resp.StatusCode, reply))
	}
	if err == nil && int64(len(reply)) > limit {
		err = errReplyTooLarge
	}
	if err != nil {
		return &PublishError{Op: "publish", Channels: channels, Err: g.redactError(err)}
	}
	return g.publishReplies(channels, reply)
}

// appendBatch writes the request: one publish command a publication,
// in a slice of the size it will take (unless names need escaping).
// Written by hand, not encoded from typed structs by encoding/json, which
// scans every payload again (json.RawMessage is compacted) and walks the
// structs by reflection: measured on a batch of 100 publications of 200
// bytes, 103µs against 11µs here, which made BroadcastBatch 8 to 12%
// slower against Centrifugo (1.08x its bare gocent pipe, from 0.96x);
// the typed reply (batchReply) costs 3% more.
func appendBatch(channels []string, payloads [][]byte, keys, origins []string) []byte {
	const command = len(`{"publish":{"channel":"","data":,"idempotency_key":""}},`)
	const tags = len(`,"tags":{"origin":""}`)
	size := len(`{"commands":[]}`)
	for k, ch := range channels {
		size += command + len(ch) + len(payloads[k]) + len(keys[k])
		if origins != nil && origins[k] != "" {
			size += tags + len(origins[k])
		}
	}
	b := make([]byte, 0, size)
	b = append(b, `{"commands":[`...)
	for k, ch := range channels {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"publish":{"channel":`...)
		b = appendJSONString(b, ch) // names are valid UTF-8, checked
		b = append(b, `,"data":`...)
		b = append(b, payloads[k]...)
		if key := keys[k]; key != "" {
			if !utf8.ValidString(key) { // an Event.ID of any bytes, made valid the same way each time
				key = strings.ToValidUTF8(key, "\ufffd")
			}
			b = append(b, `,"idempotency_key":`...)
			b = appendJSONString(b, key)
		}
		if origins != nil && origins[k] != "" {
			b = append(b, `,"tags":{"origin":`...)
			b = appendOrigin(b, origins[k])
			b = append(b, '}')
		}
		b = append(b, "}}"...)
	}
	return append(b, "]}"...)
}

// appendOrigin writes origin as a JSON string, the same string as the
// payload's "origin" (encoding/json's): an origin of any bytes is made
// valid UTF-8 the way json.Marshal makes it, so that the tag and the
// payload always agree.
func appendOrigin(b []byte, origin string) []byte {
	if utf8.ValidString(origin) {
		return appendJSONString(b, origin)
	}
	s, _ := json.Marshal(origin) // a string: never fails
	return append(b, s...)
}

// batchReply is Centrifugo's answer to the publish request: one reply a
// command, in order, either a publish result (an offset and an epoch, not
// used) or an API error.
type batchReply struct {
	Replies []struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Publish *struct{} `json:"publish"`
	} `json:"replies"`
}

// publishReplies reads Centrifugo's answer to len(channels) publications.
func (g gocentAPI) publishReplies(channels []string, body []byte) error {
	var reply batchReply
	if err := json.Unmarshal(body, &reply); err != nil || reply.Replies == nil {
		return &PublishError{Op: "publish", Channels: channels, Err: errNoResult}
	}
	if len(reply.Replies) != len(channels) {
		return &PublishError{Op: "publish", Channels: channels, Err: errReplyCount}
	}
	var failed []int
	var names []string
	for k, r := range reply.Replies {
		switch {
		case r.Error != nil:
			failed, names = append(failed, k), append(names, channels[k])
		case r.Publish == nil:
			return &PublishError{Op: "publish", Channels: channels, Err: errNoResult}
		}
	}
	if failed == nil {
		return nil
	}
	first := reply.Replies[failed[0]].Error
	pe := g.apiError("publish", names, refusalErr(first.Code, first.Message)).(*PublishError)
	pe.failedPubs = failed
	return pe
}

// errReplyCount marks a reply whose replies do not match the publications
// one for one.
var errReplyCount = errors.New("the reply does not hold one answer a publication: is APIURL Centrifugo's /api endpoint?")

var jsonContentType = []string{"application/json"}

// The other calls, through gocent, and what all calls share: their
// errors, the redaction of secrets, and the bound on replies.

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
	return g.apiError("unsubscribe", []string{channel}, g.small.Unsubscribe(ctx, channel, user))
}

// reconnectDisconnect is in the range Centrifugo clients reconnect after
// (4000-4499): they ask the routes for a new token, so they come back as
// whoever the session holds now.
var reconnectDisconnect = &gocent.Disconnect{Code: 4001, Reason: "session changed", Reconnect: true}

func (g gocentAPI) disconnect(ctx context.Context, user string) error {
	return g.apiError("disconnect", nil, g.small.Disconnect(ctx, user, gocent.WithDisconnect(reconnectDisconnect)))
}

func (g gocentAPI) info(ctx context.Context) error {
	_, err := g.small.Info(ctx)
	return g.apiError("info", nil, err)
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
	// (presence, channels).
	maxReplyBody = 32 << 20
	// smallReplies bounds the replies to the other calls of gocent's:
	// unsubscribe, disconnect, info (a few hundred bytes a node of the
	// cluster), and a pipe of reauthBatch unsubscribes (a few bytes each).
	// A hostile upstream answering with millions of tiny replies is cut
	// there, before they are decoded.
	smallReplies = 1 << 20
	// smallReply bounds a 200 reply to a publish, and publishReply adds to
	// it for each publication (whose result is an offset and an epoch).
	smallReply   = 8 << 10
	publishReply = 1 << 10
)

// errReplyTooLarge is the error of reading a reply past its bound: an
// answer, not a missing one, so it is not retried.
var errReplyTooLarge = errors.New("the reply is larger than any Centrifugo answer to this call")

// limitedClient returns a copy of hc whose replies are read at most up to
// maxErrorBody (errors) or limit, so that a hostile or broken upstream
// cannot make the plugin hold a huge body. It notes the Retry-After of a
// 429 or 503 for the retry loop (noteRetryAfter).
func limitedClient(hc *http.Client, limit int64) *http.Client {
	cp := *hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cp.Transport = limitTransport{base, limit}
	return &cp
}

type limitTransport struct {
	base  http.RoundTripper
	limit int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	limit := t.limit
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

// The calls below serve Reauthorize (reauth.go).

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
// Centrifugo refused, with the first refusal. A transport failure, or an
// answer that is not the API's, refuses none: what was done is unknown.
func (g gocentAPI) unsubscribeAll(ctx context.Context, user string, channels []string) (refused int, err error) {
	pipe := g.small.Pipe()
	for _, ch := range channels {
		if err := pipe.AddUnsubscribe(ch, user); err != nil {
			return 0, &PublishError{Op: "unsubscribe", Err: err}
		}
	}
	replies, err := g.small.SendPipe(ctx, pipe)
	if err != nil {
		return 0, g.apiError("unsubscribe", nil, err)
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
			return 0, &PublishError{Op: "unsubscribe", Err: errNoResult}
		}
	}
	return refused, first
}

// holders asks the presence of each of channels in one request and
// answers those user is present in. A channel without presence (error
// 108) makes the answer unknowable; any other error fails the call.
func (g gocentAPI) holders(ctx context.Context, user string, channels []string) (held []string, unknowable bool, err error) {
	pipe := g.c.Pipe()
	for _, ch := range channels {
		if err := pipe.AddPresence(ch); err != nil {
			return nil, false, &PublishError{Op: "presence", Channels: channels, Err: err}
		}
	}
	replies, err := g.c.SendPipe(ctx, pipe)
	if err != nil {
		return nil, false, g.apiError("presence", channels, err)
	}
	if len(replies) != len(channels) {
		return nil, false, &PublishError{Op: "presence", Channels: channels, Err: errNoPresence}
	}
	for k, r := range replies {
		if r.Error != nil {
			if r.Error.Code == codeNotAvailable {
				return nil, true, nil
			}
			return nil, false, g.apiError("presence", channels[k:k+1], r.Error)
		}
		var res gocent.PresenceResult
		if !isObject(r.Result) || json.Unmarshal(r.Result, &res) != nil {
			return nil, false, &PublishError{Op: "presence", Channels: channels[k : k+1], Err: errNoPresence}
		}
		for _, ci := range res.Presence {
			if ci.User == user {
				held = append(held, channels[k])
				break
			}
		}
	}
	return held, false, nil
}

// userChannels: Centrifugo's API does not say what a user reads.
func (g gocentAPI) userChannels(context.Context, string) ([]string, bool, error) {
	return nil, false, nil
}
