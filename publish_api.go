package instant

// The publish request, written by hand.
//
// Every publication carries its event's id as Centrifugo's idempotency_key,
// so that a publish sent again (a retry after a 502 whose publish did reach
// Centrifugo, a failover past a slow node) is dropped by Centrifugo instead
// of published twice: within its idempotency window (5 minutes), a key it
// has seen on a channel gets the first publish's result back and nothing is
// published. gocent v3.3.0 cannot send the key (its PublishOptions hold
// only skip_history), so this request is written here, on the same
// *http.Client as gocent's calls (limitedClient: the same bounds on
// replies), with the same Authorization header and the same redaction of
// secrets in errors; gocent keeps the calls it serves.
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

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"
)

// publish sends payloads[k] to channels[k] with the idempotency key
// keys[k] and the tag "origin" origins[k] (none when "", or when origins
// is nil), all in one request, in order. When Centrifugo answered with an
// API error for some publications, the *PublishError lists their channels
// and their indices (failedPubs).
func (g gocentAPI) publish(ctx context.Context, channels []string, payloads [][]byte, keys, origins []string) error {
	ctx = withReplyLimit(ctx, smallReply+int64(len(channels))*publishReply)
	body := appendBatch(channels, payloads, keys, origins)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.batchURL, nil)
	if err != nil {
		return &PublishError{Op: "publish", Channels: channels, Err: g.redactError(err)}
	}
	// A fresh body, not a pooled one: the transport may still read it
	// after Do returns (a 401 can come before the body is sent), and only
	// a body type it knows to be in memory goes out with the headers in
	// one write.
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	req.Header = http.Header{"Authorization": g.auth, "Content-Type": jsonContentType}
	resp, err := g.hc.Do(req)
	if err != nil {
		return &PublishError{Op: "publish", Channels: channels, Err: g.redactError(err)}
	}
	reply := getBuffer()
	defer putBuffer(reply)
	reply.b, err = readAll(resp.Body, reply.b)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// What was read of the body, even if the connection broke: the
		// status is the answer.
		return g.apiError("publish", channels, statusErr(resp.StatusCode, reply.b))
	}
	if err != nil {
		return &PublishError{Op: "publish", Channels: channels, Err: g.redactError(err)}
	}
	return g.publishReplies(channels, reply.b)
}

// appendBatch writes the request: one publish command a publication,
// in a slice of the size it will take (unless names need escaping).
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
		b = appendJSONString(b, ch) // token.go's; names are valid UTF-8, checked
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

// publishReplies reads Centrifugo's answer to len(channels) publications.
func (g gocentAPI) publishReplies(channels []string, body []byte) error {
	if !json.Valid(body) {
		return &PublishError{Op: "publish", Channels: channels, Err: errNoResult}
	}
	var failed []int
	var first *replyError
	k := 0
	err := eachReply(body, func(reply []byte) error {
		if k == len(channels) {
			return errReplyCount
		}
		ok, apiErr, err := parseReply(reply)
		switch {
		case err != nil:
			return err
		case apiErr != nil:
			failed = append(failed, k)
			if first == nil {
				first = apiErr
			}
		case !ok:
			return errNoResult
		}
		k++
		return nil
	})
	if err == nil && k != len(channels) {
		err = errReplyCount
	}
	if err != nil {
		return &PublishError{Op: "publish", Channels: channels, Err: err}
	}
	if first == nil {
		return nil
	}
	names := make([]string, len(failed))
	for n, k := range failed {
		names[n] = channels[k]
	}
	pe := g.apiError("publish", names, refusalErr(first.Code, first.Message)).(*PublishError)
	pe.failedPubs = failed
	return pe
}

// errReplyCount marks a reply whose replies do not match the publications
// one for one.
var errReplyCount = errors.New("the reply does not hold one answer a publication: is APIURL Centrifugo's /api endpoint?")

type replyError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

var (
	repliesHead = []byte(`{"replies":[`)
	publishHead = []byte(`{"publish":`)
)

// eachReply calls f with each element of body's "replies", a valid JSON
// text. Centrifugo's answer, {"replies":[{…},{…}]} with no space, is cut
// without decoding; any other form is decoded.
func eachReply(body []byte, f func([]byte) error) error {
	rest, ok := bytes.CutPrefix(bytes.TrimSpace(body), repliesHead)
	for ok && len(rest) > 0 && rest[0] == '{' {
		n := objectEnd(rest)
		if n < 0 {
			ok = false
			break
		}
		if err := f(rest[:n]); err != nil {
			return err
		}
		switch rest = rest[n:]; {
		case len(rest) > 0 && rest[0] == ',':
			rest = rest[1:]
		case string(rest) == "]}":
			return nil
		default:
			ok = false
		}
	}
	if ok && string(rest) == "]}" {
		return nil // no replies
	}
	var all struct {
		Replies []json.RawMessage `json:"replies"`
	}
	if err := json.Unmarshal(body, &all); err != nil || all.Replies == nil {
		return errNoResult
	}
	for _, r := range all.Replies {
		if err := f(r); err != nil {
			return err
		}
	}
	return nil
}

// objectEnd returns the length of the JSON object at the start of b (valid
// JSON), or -1.
func objectEnd(b []byte) int {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// parseReply reads one reply: ok when it holds a publish result (a JSON
// object), or Centrifugo's error. {"publish":{…}}, the reply to a
// publication made, is checked without decoding.
func parseReply(reply []byte) (ok bool, apiErr *replyError, err error) {
	// Centrifugo writes no space in its replies.
	if inner, found := bytes.CutPrefix(reply, publishHead); found && len(inner) >= 3 && inner[0] == '{' && inner[len(inner)-1] == '}' && objectEnd(inner) == len(inner)-1 {
		return true, nil, nil
	}
	var rep struct {
		Error   *replyError     `json:"error"`
		Publish json.RawMessage `json:"publish"`
	}
	if err := json.Unmarshal(reply, &rep); err != nil {
		return false, nil, errNoResult // valid JSON, but not a reply's shape
	}
	if rep.Error != nil {
		return false, rep.Error, nil
	}
	return isObject(rep.Publish), nil, nil
}

var jsonContentType = []string{"application/json"}

// buffer is a pooled byte slice, for replies.
type buffer struct{ b []byte }

var buffers = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 4<<10)} }}

// maxPooled is the largest buffer put back: a batch of thousands of
// events is rare, and its buffer is not kept.
const maxPooled = 1 << 20

func getBuffer() *buffer { return buffers.Get().(*buffer) }

func putBuffer(b *buffer) {
	if cap(b.b) > maxPooled {
		return
	}
	b.b = b.b[:0]
	buffers.Put(b)
}

// readAll appends r's bytes to b, as io.ReadAll does into a new slice.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
