package instant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// Check's identities: users with a space, which no User.ID has; the
	// API's differs from the connection's, so that its unsubscribe calls
	// cannot end the connection's subscriptions.
	checkUser    = "instant check"
	checkAPIUser = "instant check api"
	checkChannel = "instant-check"

	codeUnknownChannel = 102 // Centrifugo's error for a namespace it does not have
	codeNotAvailable   = 108

	wsReadBudget  = 4 << 20  // all one websocket reads, handshake included
	wsMaxMessage  = 1 << 20  // one message it reads
	wsFrameTarget = 32 << 10 // one message it writes (Centrifugo reads up to 64 KiB)
	checkRound    = 100      // subscriptions at a time (client.channel_limit is 128)
)

// Check asks the running Centrifugo whether it fits this app, as the app
// and a browser would, within PublishTimeout (and ctx), and returns every
// problem it finds (errors.Join), each naming its fix: a node of APIURL or
// APIURLs, or WebsocketURL, not answering (ErrUnreachable); another API key
// (ErrAPIKey) or token secret (ErrTokenSecret, over a real websocket); an
// origin of SiteOrigin or TrustedOrigins refused (ErrStaleConfig; "no
// browser origin allowed" when all are; ErrConfig "no browser origin
// checked" when none is set); a namespace of the app's channels and rules
// unknown, or with other presence or recovery than CentrifugoConfig writes
// (ErrStaleConfig naming it); and first, a Centrifugo on another config
// altogether ("wrong -c?"). It connects as user "instant check" to
// "$<namespace>:instant-check" channels, and leaves no error or warning in
// a fitting Centrifugo's log. With Config.Server set, it asks only that
// Redis answers and that the outbox table is BroadcastTx's. Safe for
// concurrent use.
func (i *Instant) Check(ctx context.Context) error {
	if i == nil {
		return ErrNotInstalled
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
	defer cancel()
	if i.server != nil {
		return i.server.Check(ctx)
	}
	namespaces := i.namespaces()
	addrs := append([]string{i.cfg.APIURL}, i.cfg.APIURLs...)
	reports := make([]checkReport, len(i.nodes)+1)
	var wg sync.WaitGroup
	for k, node := range i.nodes {
		wg.Go(func() { reports[k] = checkNode(ctx, node, redactedURL(addrs[k]), namespaces) })
	}
	wg.Go(func() { reports[len(i.nodes)] = i.checkBrowser(ctx, namespaces) })
	wg.Wait()

	var errs []error
	missing := map[string][]string{}
	apiKey, token, noOrigin := false, false, false
	for _, r := range reports {
		errs = append(errs, r.errs...)
		for _, ns := range r.missing {
			missing[ns] = append(missing[ns], r.where)
		}
		apiKey = apiKey || slices.ContainsFunc(r.errs, func(err error) bool { return errors.Is(err, ErrAPIKey) })
		token, noOrigin = token || r.badToken, noOrigin || r.noOrigin
	}
	for _, ns := range namespaces {
		if where := missing[ns]; len(where) > 0 {
			errs = append(errs, fmt.Errorf("%w: namespace %q (channels %q) is unknown to centrifugo at %s: "+
				"regenerate its config with CentrifugoConfig, called after every Authorize, and restart it",
				ErrStaleConfig, ns, privatePrefix+ns+":…", strings.Join(where, " and ")))
		}
	}
	// A wrong -c: Centrifugo runs on its defaults. One sign alone is one setting apart.
	noNamespace := len(missing) > 0 && len(missing) == len(namespaces)
	var signs []string
	for sign, on := range map[string]bool{"refuses the app's API key": apiKey, "refuses the tokens the app signs": token,
		"declares none of the app's namespaces": noNamespace, "allows none of the app's origins": noOrigin} {
		if on {
			signs = append(signs, sign)
		}
	}
	if apiKey && token || noNamespace && len(signs) >= 2 {
		slices.Sort(signs)
		errs = append([]error{fmt.Errorf("%w: centrifugo does not run the config CentrifugoConfig generates (wrong -c?): it %s: "+
			"write the config with `app centrifugo-config FILE` and start centrifugo with -c FILE (a -c path it cannot read, it ignores, and runs on its defaults)",
			ErrStaleConfig, strings.Join(signs, ", "))}, errs...)
	}
	return errors.Join(errs...)
}

// checkReport is what one part of Check found at where.
type checkReport struct {
	where    string
	errs     []error
	missing  []string
	noOrigin bool // every origin tried was refused
	badToken bool // a connection token the app signed was refused
}

// checkNode asks one node's server API about each of checkChannels.
func checkNode(ctx context.Context, node apiClient, where string, namespaces []string) checkReport {
	r := checkReport{where: where}
	for k, channel := range checkChannels(namespaces) {
		err := node.unsubscribe(ctx, channel, checkAPIUser)
		var pe *PublishError
		switch {
		case err == nil:
		case k > 0 && errors.As(err, &pe) && pe.Code == codeUnknownChannel:
			r.missing = append(r.missing, namespaces[k-1])
		default:
			r.errs = append(r.errs, nodeProblem(ctx, where, err))
			return r
		}
	}
	return r
}

// checkChannels are one channel without a namespace, then one of each.
func checkChannels(namespaces []string) []string {
	channels := []string{privatePrefix + checkChannel}
	for _, ns := range namespaces {
		channels = append(channels, privatePrefix+ns+":"+checkChannel)
	}
	return channels
}

// nodeProblem says what a failed call to the node at where means.
func nodeProblem(ctx context.Context, where string, err error) error {
	const fix = "start Centrifugo there, or set APIURL (INSTANT_API_URL) to its server API"
	var pe *PublishError
	errors.As(err, &pe)
	switch {
	case errors.Is(err, ErrAPIKey):
		return fmt.Errorf("%w: %s answered 401: set the app's APIKey (CENTRIFUGO_HTTP_API_KEY) to Centrifugo's http_api.key", ErrAPIKey, where)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: no answer from %s within PublishTimeout: %s", ErrUnreachable, where, fix)
	case pe == nil:
		return fmt.Errorf("instant: centrifugo at %s: %w", where, err)
	case pe.StatusCode != 0:
		return fmt.Errorf("%w: %s answered HTTP %d, not as Centrifugo's server API does: %s", ErrUnreachable, where, pe.StatusCode, fix)
	case pe.Code != 0:
		return fmt.Errorf("instant: centrifugo at %s refused Check's call: error %d %s", where, pe.Code, pe.Message)
	case retryable(err):
		return fmt.Errorf("%w: nothing answers at %s (%v): %s", ErrUnreachable, where, pe.Err, fix)
	}
	return fmt.Errorf("%w: %s answered, but not as Centrifugo's server API does (%v): %s", ErrUnreachable, where, pe.Err, fix)
}

// redactedURL is raw without its password, for messages.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an invalid URL)"
	}
	return u.Redacted()
}

// checkOrigin checks that o is scheme://host[:port], as browsers send it.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, " \t\r\n") {
		return fmt.Errorf("%q is not an origin such as https://app.example.com", o)
	}
	return nil
}

// checkBrowser connects to WebsocketURL as a page would, from each origin,
// with tokens the app signed.
func (i *Instant) checkBrowser(ctx context.Context, namespaces []string) checkReport {
	wsURL := i.cfg.WebsocketURL
	r := checkReport{where: wsURL}
	report := func(format string, args ...any) checkReport {
		r.errs = append(r.errs, fmt.Errorf(format, args...))
		return r
	}
	unreachable := func(status int, err error) checkReport {
		if status != 0 {
			return report("%w: the websocket URL browsers are given, %s, answered HTTP %d to a websocket handshake: "+
				"set WebsocketURL (INSTANT_WEBSOCKET_URL) to Centrifugo's /connection/websocket as browsers reach it", ErrUnreachable, wsURL, status)
		}
		return report("%w: nothing answers as Centrifugo at the websocket URL browsers are given, %s (%v): "+
			"start Centrifugo there, or set WebsocketURL (INSTANT_WEBSOCKET_URL) to where browsers reach it", ErrUnreachable, wsURL, err)
	}
	fail := func(err error) checkReport {
		if ctx.Err() != nil {
			return report("%w: no answer from centrifugo at %s within PublishTimeout", ErrUnreachable, wsURL)
		}
		return report("instant: centrifugo at %s: %v", wsURL, err)
	}

	var origins []string // SiteOrigin, then TrustedOrigins (which New checked)
	switch o := i.cfg.SiteOrigin; {
	case o == "" && len(i.cfg.TrustedOrigins) == 0:
		report("%w: no browser origin checked: set SiteOrigin (INSTANT_SITE_ORIGIN) to where browsers load the app's pages, which Centrifugo must allow "+
			"(CentrifugoOptions.AllowedOrigins, client.allowed_origins): without it Check cannot tell whether pages may connect", ErrConfig)
	case o != "" && checkOrigin(o) != nil:
		report("%w: SiteOrigin: %v", ErrConfig, checkOrigin(o))
	case o != "":
		origins = append(origins, o)
	}
	for _, o := range i.cfg.TrustedOrigins {
		if !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	var conn *wsConn
	defer func() {
		if conn != nil {
			conn.close()
		}
	}()
	var refused [][]string
	for _, origin := range append(origins, "") { // without an Origin when each is refused
		if origin == "" && conn != nil {
			break
		}
		c, status, err := dialWebsocket(ctx, wsURL, origin)
		switch {
		case status == http.StatusForbidden && origin != "":
			refused = append(refused, []string{origin})
		case err != nil:
			return unreachable(status, err)
		case conn == nil:
			conn = c
		default:
			c.close()
		}
	}
	how := ""
	if r.noOrigin = len(refused) > 0 && len(refused) == len(origins); r.noOrigin {
		refused, how = [][]string{slices.Concat(refused...)}, "no browser origin allowed: "
	}
	for _, o := range refused {
		report("%w: %scentrifugo at %s refuses pages from %s (HTTP 403 to the websocket handshake): "+
			"add it to CentrifugoOptions.AllowedOrigins (client.allowed_origins) and regenerate the config", ErrStaleConfig, how, wsURL, strings.Join(o, " and "))
	}

	tok, err := i.sign(checkUser, "", nil, i.cfg.ConnectionTokenTTL, time.Now())
	if err != nil {
		return fail(err)
	}
	replies, err := conn.exchange([]command{{"connect": map[string]string{"token": tok.Token, "name": "instant-check"}}})
	var closed *websocket.CloseError
	switch {
	case errors.As(err, &closed) && closed.Code == 3500: // invalid token
		r.badToken = true
		return report("%w: centrifugo at %s refused a connection token the app signed (disconnect %d %q): "+
			"set the app's TokenSecret (CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY) to Centrifugo's client.token.hmac_secret_key",
			ErrTokenSecret, wsURL, closed.Code, closed.Text)
	case err != nil:
		return fail(err)
	case replies[0].Error != nil && replies[0].Error.Code == 109: // token expired
		return report("%w: centrifugo at %s says a connection token the app has just signed has expired: "+
			"the clocks of the app's and Centrifugo's machines are apart by more than ConnectionTokenTTL", ErrTokenSecret, wsURL)
	case replies[0].Error != nil:
		return fail(fmt.Errorf("connect refused: error %d %s", replies[0].Error.Code, replies[0].Error.Message))
	}

	channels := checkChannels(namespaces)
	probes, err := i.probeChannels(conn, channels, false)
	if err != nil {
		return fail(err)
	}
	for k, p := range probes {
		switch {
		case p.refused == nil:
		case p.refused.Code == codeUnknownChannel && k > 0:
			r.missing = append(r.missing, namespaces[k-1])
		default:
			report("instant: centrifugo at %s refused a subscription to %s with a token the app signed: error %d %s",
				wsURL, p.channel, p.refused.Code, p.refused.Message)
		}
	}
	if probes[0].refused != nil {
		return r
	}
	// Each namespace has the options of channels without one, but presence
	// only where private channels may be. Where the joins differ,
	// presence_stats tells how (see probeChannels).
	private := i.privateNamespaces()
	suspects, again := []int{0}, []string{channels[0]}
	for k := 1; k < len(probes); k++ {
		if probes[k].refused == nil && private(namespaces[k-1]) == private("") && probes[k].joined != probes[0].joined {
			suspects, again = append(suspects, k), append(again, channels[k])
		}
	}
	if len(suspects) > 1 {
		asked, err := i.probeChannels(conn, again, true)
		if err != nil {
			return fail(err)
		}
		for n, k := range suspects {
			probes[k].presence = asked[n].presence
		}
	}
	state := func(p probeResult) (presence, recovery string) {
		presence = map[uint32]string{0: "presence open to subscribers' own queries (a config older than the presence route)",
			codeNotAvailable: "presence off", 103: "presence on"}[p.presence]
		if presence == "" && p.presence != noPresence {
			presence = fmt.Sprintf("presence answering error %d", p.presence)
		}
		return presence, map[bool]string{true: "history and recovery on", false: "history and recovery off"}[p.recoverable]
	}
	basePresence, baseRecovery := state(probes[0])
	for k, p := range probes[1:] {
		var diffs []string
		presence, recovery := state(p)
		if presence != "" && basePresence != "" && presence != basePresence {
			diffs = append(diffs, presence+" where channels without a namespace have "+basePresence)
		}
		if p.refused == nil && recovery != baseRecovery {
			diffs = append(diffs, recovery+" where channels without a namespace have "+baseRecovery)
		}
		if len(diffs) > 0 {
			report("%w: namespace %q at %s has %s, unlike the config CentrifugoConfig writes: regenerate it and restart Centrifugo",
				ErrStaleConfig, namespaces[k], wsURL, strings.Join(diffs, ", and "))
		}
	}
	return r
}

// probeResult is what Centrifugo answered about one channel.
type probeResult struct {
	channel     string
	refused     *wsError // the subscription's error
	recoverable bool
	joined      bool   // a join push came (the token asks for them)
	presence    uint32 // presence_stats' error code, 0 when it answered, noPresence unasked
}

const noPresence = 1<<32 - 1

// probeChannels subscribes conn to each channel, checkRound at a time, and
// unsubscribes; with presence, it asks presence_stats in between (only
// where the joins differ: Centrifugo logs a refused one as an error).
func (i *Instant) probeChannels(conn *wsConn, channels []string, presence bool) ([]probeResult, error) {
	probes := make([]probeResult, len(channels))
	for start := 0; start < len(channels); start += checkRound {
		round := probes[start:min(start+checkRound, len(probes))]
		cmds := make([]command, len(round))
		for k := range round {
			round[k] = probeResult{channel: channels[start+k], presence: noPresence}
			tok, err := i.sign(checkUser, round[k].channel, nil, i.cfg.SubscriptionTokenTTL, time.Now())
			if err != nil {
				return nil, err
			}
			cmds[k] = command{"subscribe": map[string]string{"channel": round[k].channel, "token": tok.Token}}
		}
		replies, err := conn.exchange(cmds)
		if err != nil {
			return nil, err
		}
		var subscribed []*probeResult
		for k, rep := range replies {
			if round[k].refused = rep.Error; rep.Error == nil {
				round[k].recoverable = rep.Subscribe != nil && rep.Subscribe.Recoverable
				subscribed = append(subscribed, &round[k])
			}
		}
		for _, method := range []string{"presence_stats", "unsubscribe"} {
			if len(subscribed) == 0 || method == "presence_stats" && !presence {
				continue
			}
			cmds = cmds[:0]
			for _, p := range subscribed {
				cmds = append(cmds, command{method: map[string]string{"channel": p.channel}})
			}
			// On one node, join pushes come before these replies.
			replies, err := conn.exchange(cmds)
			if err != nil {
				return nil, err
			}
			for k, p := range subscribed {
				if p.joined = conn.joined[p.channel]; method == "presence_stats" {
					p.presence = 0
					if replies[k].Error != nil {
						p.presence = replies[k].Error.Code
					}
				}
			}
		}
	}
	return probes, nil
}

// wsConn is Check's websocket to Centrifugo, opened as a browser's.
type wsConn struct {
	ws     *websocket.Conn
	stop   func() bool     // ends the watch of the dial's context
	id     uint32          // the last command's
	joined map[string]bool // the channels a join push came on
}

// budgetConn reads at most left bytes, then fails.
type budgetConn struct {
	net.Conn
	left int
}

func (c *budgetConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("the server sent more than any Centrifugo answer to Check")
	}
	n, err := c.Conn.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

// dialWebsocket makes a handshake to rawURL from origin (none if ""), and
// returns the connection, closed when ctx ends, or the HTTP status of a
// refused handshake (0 if none came) and the error.
func dialWebsocket(ctx context.Context, rawURL, origin string) (*wsConn, int, error) {
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &budgetConn{Conn: conn, left: wsReadBudget}, nil
	}}
	header := http.Header{"User-Agent": {"instant-check"}}
	if origin != "" {
		header.Set("Origin", origin)
	}
	ws, resp, err := d.DialContext(ctx, rawURL, header)
	switch {
	case errors.Is(err, websocket.ErrBadHandshake) && resp.StatusCode != http.StatusSwitchingProtocols:
		return nil, resp.StatusCode, err
	case err != nil:
		return nil, 0, err
	case resp.Header.Get("Sec-Websocket-Extensions") != "":
		// gorilla would inflate one past the read limit (of wire bytes).
		ws.Close()
		return nil, 0, errors.New("websocket: the server answered with an extension the handshake did not ask for")
	}
	ws.SetReadLimit(wsMaxMessage)
	ws.SetPingHandler(func(data string) error { // a lost pong shows in the next read, if at all
		_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		return nil
	})
	return &wsConn{ws: ws, stop: context.AfterFunc(ctx, func() { ws.Close() }), joined: map[string]bool{}}, 0, nil
}

// close sends a normal close frame, briefly, and closes the connection.
func (c *wsConn) close() {
	c.stop()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
	_ = c.ws.Close()
}

// command is one of Centrifugo's JSON protocol ("subscribe": {…}).
type command map[string]any

type wsError struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

// wsReply is a reply, or a push (no id), of the protocol.
type wsReply struct {
	ID        uint32   `json:"id"`
	Error     *wsError `json:"error"`
	Subscribe *struct {
		Recoverable bool `json:"recoverable"`
	} `json:"subscribe"`
	Push *struct {
		Channel string          `json:"channel"`
		Join    json.RawMessage `json:"join"`
	} `json:"push"`
}

// exchange numbers and sends cmds, a JSON line each, in as few messages as
// Centrifugo reads, and returns their replies in order, noting join pushes
// on the way. A close from the server is a *websocket.CloseError.
func (c *wsConn) exchange(cmds []command) ([]wsReply, error) {
	var out []byte
	first := c.id + 1
	for _, cmd := range cmds {
		c.id++
		cmd["id"] = c.id
		raw, _ := json.Marshal(cmd) // strings and numbers only
		if len(out) > 0 && len(out)+1+len(raw) > wsFrameTarget {
			if err := c.ws.WriteMessage(websocket.TextMessage, out); err != nil {
				return nil, err
			}
			out = out[:0]
		}
		out = append(append(out, raw...), '\n')
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, bytes.TrimSuffix(out, []byte("\n"))); err != nil {
		return nil, err
	}
	replies := make([]wsReply, len(cmds))
	for left := len(cmds); left > 0; {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		for dec := json.NewDecoder(bytes.NewReader(msg)); ; {
			var rep wsReply
			if err := dec.Decode(&rep); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("an answer that is not Centrifugo's JSON protocol: %v", err)
			}
			if k := int(rep.ID) - int(first); rep.ID != 0 && k >= 0 && k < len(cmds) && replies[k].ID == 0 {
				replies[k], left = rep, left-1
			}
			if rep.ID == 0 && rep.Push != nil && rep.Push.Join != nil {
				c.joined[rep.Push.Channel] = true
			}
		}
	}
	return replies, nil
}
