package instant

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	// Users with a space, which no User.ID has; the API's is another.
	checkUser    = "instant check"
	checkAPIUser = "instant check api"
	checkChannel = "instant-check"

	codeUnknownChannel = 102 // Centrifugo's error for a namespace it does not have
	codeNotAvailable   = 108

	wsReadBudget = 4 << 20 // all one websocket reads, handshake included
	wsMaxMessage = 1 << 20 // one message it reads
	checkRound   = 100     // subscriptions at a time (client.channel_limit is 128)
)

// Check asks the running Centrifugo, as the app and a browser would, within
// PublishTimeout and ctx, whether it fits this app. It returns every problem
// (errors.Join), each naming its fix: ErrUnreachable, ErrAPIKey, ErrTokenSecret,
// ErrStaleConfig (first if another config altogether runs: "wrong -c?"),
// ErrConfig. With Config.Server set, it asks only that Redis answers and that
// the outbox table is BroadcastTx's. Safe for concurrent use.
func (i *Instant) Check(ctx context.Context) error {
	if i == nil {
		return ErrNotInstalled
	}
	ctx, cancel := context.WithTimeout(cmp.Or(ctx, context.Background()), i.cfg.PublishTimeout)
	defer cancel()
	if i.cfg.Server != nil {
		return i.cfg.Server.Check(ctx)
	}
	namespaces, private := i.namespaces()
	reports := make([]checkReport, len(i.nodes)+1)
	var wg sync.WaitGroup
	for k, node := range i.nodes {
		wg.Go(func() { reports[k] = checkNode(ctx, node, redactedURL(node.addr), namespaces) })
	}
	wg.Go(func() { reports[len(i.nodes)] = i.checkBrowser(ctx, namespaces, private) })
	wg.Wait()

	var errs []error
	missing := map[string][]string{}
	for _, r := range reports {
		errs = append(errs, r.errs...)
		for _, ns := range r.missing {
			missing[ns] = append(missing[ns], r.where)
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(missing)) {
		errs = append(errs, fmt.Errorf("%w: namespace %q (channels %q) is unknown to centrifugo at %s: "+
			"regenerate its config with CentrifugoConfig, called after every Authorize, and restart it",
			ErrStaleConfig, ns, privatePrefix+ns+":…", strings.Join(missing[ns], " and ")))
	}
	// Two signs of Centrifugo's defaults: a wrong -c.
	all := errors.Join(errs...)
	apiKey, token := errors.Is(all, ErrAPIKey), errors.Is(all, ErrTokenSecret)
	noNamespace := len(missing) > 0 && len(missing) == len(namespaces)-1
	on := map[string]bool{"refuses the app's API key": apiKey, "refuses the tokens the app signs": token,
		"declares none of the app's namespaces": noNamespace, "allows none of the app's origins": reports[len(i.nodes)].noOrigin}
	signs := slices.DeleteFunc(slices.Sorted(maps.Keys(on)), func(s string) bool { return !on[s] })
	if apiKey && token || noNamespace && len(signs) >= 2 {
		return errors.Join(append([]error{fmt.Errorf("%w: centrifugo does not run the config CentrifugoConfig generates (wrong -c?): it %s: "+
			"write it with `app centrifugo-config FILE` and start centrifugo with -c FILE (a -c path it cannot read, it ignores, and runs on its defaults)",
			ErrStaleConfig, strings.Join(signs, ", "))}, errs...)...)
	}
	return all
}

type checkReport struct {
	where    string
	errs     []error
	missing  []string // namespaces unknown there
	noOrigin bool     // every origin tried was refused
}

func (r *checkReport) add(format string, args ...any) checkReport {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
	return *r
}

func checkChannelIn(ns string) string {
	return privatePrefix + strings.TrimPrefix(ns+":", ":") + checkChannel
}

// checkNode asks one node's server API about Check's channel in each namespace.
func checkNode(ctx context.Context, node *gocentAPI, where string, namespaces []string) checkReport {
	r := checkReport{where: where}
	for _, ns := range namespaces {
		err := node.unsubscribe(ctx, checkChannelIn(ns), checkAPIUser)
		var pe *PublishError
		switch {
		case err == nil:
		case errors.As(err, &pe) && ns != "" && pe.Code == codeUnknownChannel:
			r.missing = append(r.missing, ns)
		case errors.Is(err, ErrAPIKey):
			return r.add("%w: %s answered 401: set the app's APIKey (CENTRIFUGO_HTTP_API_KEY) to Centrifugo's http_api.key", ErrAPIKey, where)
		case pe != nil && pe.StatusCode == 0 && pe.Code != 0:
			return r.add("instant: centrifugo at %s refused Check's call: %w", where, err)
		default:
			return r.add("%w: %s does not answer as Centrifugo's server API (%v): start Centrifugo there, "+
				"or set APIURL (INSTANT_API_URL) to its server API", ErrUnreachable, where, err)
		}
	}
	return r
}

func redactedURL(raw string) string {
	u, _ := url.Parse(raw)
	return u.Redacted()
}

// checkBrowser connects to WebsocketURL as a page would, from each origin,
// with tokens the app signed.
func (i *Instant) checkBrowser(ctx context.Context, namespaces []string, private map[string]bool) checkReport {
	ws := i.cfg.WebsocketURL
	r := checkReport{where: ws}
	fail := func(err error) checkReport {
		if ctx.Err() != nil {
			return r.add("%w: no answer from centrifugo at %s within PublishTimeout", ErrUnreachable, ws)
		}
		return r.add("instant: centrifugo at %s: %v", ws, err)
	}

	origins := append([]string{i.cfg.SiteOrigin}, i.cfg.TrustedOrigins...)
	if err := checkOrigin(i.cfg.SiteOrigin); err != nil && i.cfg.SiteOrigin != "" {
		r.add("%w: SiteOrigin: %v", ErrConfig, err)
	}
	slices.Sort(origins)
	if origins = slices.Compact(slices.DeleteFunc(origins, func(o string) bool { return checkOrigin(o) != nil })); len(origins) == 0 && i.cfg.SiteOrigin == "" {
		r.add("%w: no browser origin checked: set SiteOrigin (INSTANT_SITE_ORIGIN) to where browsers load the app's pages, "+
			"which Centrifugo must allow (CentrifugoOptions.AllowedOrigins)", ErrConfig)
	}
	var conn *wsConn
	defer func() { conn.close() }()
	var refused []string
	for _, origin := range append(origins, "") { // without an Origin when each is refused
		if origin == "" && conn != nil {
			break
		}
		c, status, err := dialWebsocket(ctx, ws, origin)
		switch {
		case status == http.StatusForbidden && origin != "":
			refused = append(refused, origin)
		case err != nil:
			return r.add("%w: no Centrifugo websocket at %s (%v): start Centrifugo there, or set WebsocketURL (INSTANT_WEBSOCKET_URL) "+
				"to its /connection/websocket as browsers reach it", ErrUnreachable, ws, err)
		case conn == nil:
			conn = c
		default:
			c.close()
		}
	}
	if len(refused) > 0 {
		r.noOrigin = len(refused) == len(origins)
		r.add("%w: %scentrifugo at %s refuses pages from %s (HTTP 403 to the websocket handshake): add them to CentrifugoOptions.AllowedOrigins "+
			"(client.allowed_origins) and regenerate the config", ErrStaleConfig, map[bool]string{true: "no browser origin allowed: "}[r.noOrigin], ws, strings.Join(refused, " and "))
	}

	tok, _ := i.sign(&User{ID: checkUser}, "", nil, time.Now()) // HS256 with a []byte key does not fail
	replies, err := conn.exchange([]map[string]any{{"connect": map[string]string{"token": tok.Token, "name": "instant-check"}}})
	var closed *websocket.CloseError
	switch {
	case errors.As(err, &closed) && closed.Code == 3500: // invalid token
		return r.add("%w: centrifugo at %s refused a connection token the app signed (disconnect %d %q): set the app's TokenSecret "+
			"(CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY) to Centrifugo's client.token.hmac_secret_key", ErrTokenSecret, ws, closed.Code, closed.Text)
	case err != nil:
		return fail(err)
	case replies[0].Error.Code == 109: // token expired
		return r.add("%w: centrifugo at %s says a connection token the app has just signed has expired: "+
			"the clocks of the app's and Centrifugo's machines are apart by more than ConnectionTokenTTL", ErrTokenSecret, ws)
	case replies[0].Error.Code != 0:
		return fail(fmt.Errorf("connect refused: error %d %s", replies[0].Error.Code, replies[0].Error.Message))
	}

	probes := make([]*probeResult, len(namespaces))
	for k, ns := range namespaces {
		probes[k] = &probeResult{ns: ns}
	}
	if err := i.probeChannels(conn, probes, false); err != nil {
		return fail(err)
	}
	// Only where joins differ from the base's, presence_stats says how: Centrifugo logs a refused one.
	base, suspects := probes[0], []*probeResult{probes[0]}
	for _, p := range probes {
		switch {
		case p.ns != "" && p.sub.Error.Code == codeUnknownChannel:
			r.missing = append(r.missing, p.ns)
		case p.sub.Error.Code != 0:
			r.add("instant: centrifugo at %s refused a subscription to %s with a token the app signed: error %d %s",
				ws, checkChannelIn(p.ns), p.sub.Error.Code, p.sub.Error.Message)
		case p != base && private[p.ns] == private[""] && p.joined != base.joined:
			suspects = append(suspects, p)
		}
	}
	if base.sub.Error.Code != 0 {
		return r
	}
	if len(suspects) > 1 {
		if err := i.probeChannels(conn, suspects, true); err != nil {
			return fail(err)
		}
	}
	state := func(p *probeResult) string {
		return strings.TrimPrefix(cmp.Or(p.presence, base.presence)+", history and recovery "+map[bool]string{true: "on", false: "off"}[p.sub.Subscribe.Recoverable], ", ")
	}
	for _, p := range probes[1:] {
		if p.sub.Error.Code == 0 && state(p) != state(base) {
			r.add("%w: namespace %q at %s has %s where channels without a namespace have %s: regenerate the config with CentrifugoConfig and restart Centrifugo",
				ErrStaleConfig, p.ns, ws, state(p), state(base))
		}
	}
	return r
}

type probeResult struct {
	ns       string
	sub      wsReply // the subscribe's
	joined   bool    // a join push came (the token asks for them)
	presence string  // what presence_stats says of it, "" unasked
}

// probeChannels subscribes to probes' channels, checkRound at a time, asks
// presence_stats if presence, and unsubscribes.
func (i *Instant) probeChannels(conn *wsConn, probes []*probeResult, presence bool) error {
	for round := range slices.Chunk(probes, checkRound) {
		for _, method := range []string{"subscribe", "presence_stats", "unsubscribe"} {
			if method == "presence_stats" && !presence {
				continue
			}
			cmds := make([]map[string]any, len(round))
			for k, p := range round {
				args := map[string]string{"channel": checkChannelIn(p.ns)}
				if method == "subscribe" {
					tok, _ := i.sign(&User{ID: checkUser}, args["channel"], nil, time.Now())
					args["token"] = tok.Token
				}
				cmds[k] = map[string]any{method: args}
			}
			replies, err := conn.exchange(cmds)
			if err != nil {
				return err
			}
			for k, p := range round {
				p.joined = conn.joined[checkChannelIn(p.ns)] // on one node, before the replies after the subscribe's
				switch code := replies[k].Error.Code; method {
				case "subscribe":
					p.sub = replies[k]
				case "presence_stats":
					p.presence = cmp.Or(map[uint32]string{0: "presence open to subscribers' own queries (a config older than the presence route)",
						codeNotAvailable: "presence off", 103: "presence on"}[code], fmt.Sprintf("presence answering error %d", code))
				}
			}
		}
	}
	return nil
}

// wsConn is Check's websocket to Centrifugo, opened as a browser's.
type wsConn struct {
	ws     *websocket.Conn
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

// dialWebsocket makes a handshake from origin (none if ""): a connection
// closed when ctx ends, or the HTTP status (0 if none) and error.
func dialWebsocket(ctx context.Context, rawURL, origin string) (*wsConn, int, error) {
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return &budgetConn{Conn: conn, left: wsReadBudget}, err // gorilla uses no conn with an error
	}}
	header := http.Header{"User-Agent": {"instant-check"}}
	if origin != "" {
		header.Set("Origin", origin)
	}
	ws, resp, err := d.DialContext(ctx, rawURL, header)
	switch {
	case errors.Is(err, websocket.ErrBadHandshake) && resp.StatusCode != http.StatusSwitchingProtocols:
		return nil, resp.StatusCode, fmt.Errorf("HTTP %d to a websocket handshake", resp.StatusCode)
	case err != nil:
		return nil, 0, err
	case resp.Header.Get("Sec-Websocket-Extensions") != "":
		ws.Close() // gorilla would inflate one past the read limit (of wire bytes)
		return nil, 0, errors.New("the server answered with a websocket extension the handshake did not ask for")
	}
	ws.SetReadLimit(wsMaxMessage)
	ws.SetPingHandler(func(data string) error { // a lost pong shows in the next read, if at all
		_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		return nil
	})
	context.AfterFunc(ctx, func() { ws.Close() })
	return &wsConn{ws: ws, joined: map[string]bool{}}, 0, nil
}

func (c *wsConn) close() {
	if c != nil {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
		_ = c.ws.Close()
	}
}

// wsReply is a reply, or a push (no id), of the protocol (encoding/json matches its lower-case names).
type wsReply struct {
	ID    uint32
	Error struct {
		Code    uint32
		Message string
	}
	Subscribe struct{ Recoverable bool }
	Push      struct {
		Channel string
		Join    json.RawMessage
	}
}

// exchange sends cmds, numbered, and returns their replies in order, noting join pushes.
func (c *wsConn) exchange(cmds []map[string]any) ([]wsReply, error) {
	first := c.id + 1
	for _, cmd := range cmds {
		c.id++
		cmd["id"] = c.id
		if err := c.ws.WriteJSON(cmd); err != nil {
			return nil, err
		}
	}
	replies := make([]wsReply, len(cmds))
	for left := len(cmds); left > 0; {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			var rep wsReply
			if err := json.Unmarshal(line, &rep); err != nil {
				return nil, fmt.Errorf("an answer that is not Centrifugo's JSON protocol: %v", err)
			}
			if k := int(rep.ID) - int(first); k >= 0 && k < len(cmds) && replies[k].ID == 0 {
				replies[k], left = rep, left-1
			}
			if rep.ID == 0 && rep.Push.Join != nil {
				c.joined[rep.Push.Channel] = true
			}
		}
	}
	return replies, nil
}
