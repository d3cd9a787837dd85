package instant

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The identities of Check's calls. The users hold a space, so that no
// real user (User.ID) is either; the API's is another than the
// connection's, so that its unsubscribe calls cannot end the connection's
// subscriptions.
const (
	checkUser    = "instant check"
	checkAPIUser = "instant check api"
	checkChannel = "instant-check"
)

// Check asks the running Centrifugo whether it fits this app, the way the
// app and a browser would, and returns every problem it finds joined with
// errors.Join (nil when there is none), each naming its fix, within
// PublishTimeout (and ctx):
//
//   - each node of APIURL and APIURLs answers (ErrUnreachable) and takes
//     APIKey (ErrAPIKey), through a call that changes nothing: an
//     unsubscribe of a user nobody is;
//   - WebsocketURL, which browsers are told, answers a websocket handshake
//     (ErrUnreachable) sent with the Origin header of SiteOrigin and of
//     each of TrustedOrigins, which Centrifugo must allow
//     (client.allowed_origins; ErrStaleConfig naming the origin, and
//     "no browser origin allowed" when it allows none of them). With
//     neither set, Check cannot tell whether pages may connect, and says
//     so (ErrConfig: set SiteOrigin);
//   - Centrifugo takes a connection token the app signed (ErrTokenSecret);
//   - every namespace the app's channels and rules use (see
//     CentrifugoConfig) is known to each node and to the websocket's, and
//     gives a subscription the presence and recovery that channels without
//     a namespace give, as the config CentrifugoConfig writes does
//     (ErrStaleConfig naming the namespace: regenerate the config);
//   - when Centrifugo refuses both the API key and the token secret, or
//     declares none of the namespaces and refuses a secret or every
//     origin, it runs another config than the one CentrifugoConfig writes
//     (a wrong -c, on which it runs with its defaults): the first problem
//     says so ("wrong -c?", ErrStaleConfig).
//
// The connection is a real one, as user "instant check" (a name no User
// may have), subscribed with tokens the app signed to channels named
// "$<namespace>:instant-check" for as long as Check takes. Against a
// Centrifugo that fits, it leaves no error or warning in Centrifugo's log
// (at info level nothing at all); what does not fit is logged there as
// Centrifugo logs any such client (a refused origin, an invalid token, an
// unknown channel). Safe for concurrent use.
//
// On an Instant whose Config.Server is set (the embedded server), Check
// asks only what can be wrong there: that its Redis answers (with
// RedisAddress) and that the outbox table is BroadcastTx's (with
// OutboxDB). The websocket, the secret and the namespaces are the app's
// own there, and cannot disagree.
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
	for _, r := range reports {
		errs = append(errs, r.errs...)
		for _, ns := range r.missing {
			missing[ns] = append(missing[ns], r.where)
		}
	}
	for _, ns := range namespaces {
		if where := missing[ns]; len(where) > 0 {
			errs = append(errs, fmt.Errorf("%w: namespace %q (channels %q) is unknown to centrifugo at %s: "+
				"regenerate its config with CentrifugoConfig, called after every Authorize, and restart it",
				ErrStaleConfig, ns, privatePrefix+ns+":…", strings.Join(where, " and ")))
		}
	}
	if wrong := wrongConfig(reports, len(missing) > 0 && len(missing) == len(namespaces)); wrong != nil {
		errs = append([]error{wrong}, errs...)
	}
	return errors.Join(errs...)
}

// wrongConfig names a Centrifugo that runs another config than the one
// CentrifugoConfig writes (started with a wrong -c, or none: Centrifugo
// then goes on with its defaults and its environment): it refuses both
// the API key and the token secret, or it declares none of the app's
// namespaces and shows one more sign (a secret refused, no origin
// allowed). One sign alone, or a secret and the origins, is a config out
// of date or one setting apart, which its own problem names.
func wrongConfig(reports []checkReport, noNamespace bool) error {
	var signs []string
	apiKey := slices.ContainsFunc(reports, func(r checkReport) bool {
		return slices.ContainsFunc(r.errs, func(err error) bool { return errors.Is(err, ErrAPIKey) })
	})
	if apiKey {
		signs = append(signs, "refuses the app's API key")
	}
	token := slices.ContainsFunc(reports, func(r checkReport) bool { return r.badToken })
	if token {
		signs = append(signs, "refuses the tokens the app signs")
	}
	if noNamespace {
		signs = append(signs, "declares none of the app's namespaces")
	}
	if slices.ContainsFunc(reports, func(r checkReport) bool { return r.noOrigin }) {
		signs = append(signs, "allows none of the app's origins")
	}
	if !(apiKey && token) && !(noNamespace && len(signs) >= 2) {
		return nil
	}
	return fmt.Errorf("%w: centrifugo does not run the config CentrifugoConfig generates (wrong -c?): it %s: "+
		"write the config with `app centrifugo-config FILE` and start centrifugo with -c FILE (a -c path it cannot read, it ignores, and runs on its defaults)",
		ErrStaleConfig, strings.Join(signs, ", "))
}

// checkReport is what one part of Check found: its problems, and the
// namespaces unknown to Centrifugo at where.
type checkReport struct {
	where    string
	errs     []error
	missing  []string
	noOrigin bool // every origin tried was refused
	badToken bool // a connection token the app signed was refused
}

// checkNode asks one node of the server API about a channel without a
// namespace, then about one channel of each namespace.
func checkNode(ctx context.Context, node apiClient, where string, namespaces []string) checkReport {
	r := checkReport{where: where}
	if err := node.unsubscribe(ctx, privatePrefix+checkChannel, checkAPIUser); err != nil {
		r.errs = append(r.errs, nodeProblem(ctx, where, err))
		return r
	}
	for _, ns := range namespaces {
		err := node.unsubscribe(ctx, privatePrefix+ns+":"+checkChannel, checkAPIUser)
		var pe *PublishError
		switch {
		case err == nil:
		case errors.As(err, &pe) && pe.Code == codeUnknownChannel:
			r.missing = append(r.missing, ns)
		default:
			r.errs = append(r.errs, nodeProblem(ctx, where, err))
			return r
		}
	}
	return r
}

// codeUnknownChannel is Centrifugo's error for a channel of a namespace it
// does not have.
const codeUnknownChannel = 102

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
	default:
		return fmt.Errorf("%w: %s answered, but not as Centrifugo's server API does (%v): %s", ErrUnreachable, where, pe.Err, fix)
	}
}

// redactedURL is raw without its password, for messages.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an invalid URL)"
	}
	return u.Redacted()
}

// checkOrigins are the origins Check sends browsers' handshakes from:
// SiteOrigin, then TrustedOrigins (which New checked).
func (i *Instant) checkOrigins() ([]string, []error) {
	var origins []string
	var errs []error
	if o := i.cfg.SiteOrigin; o != "" {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("%w: SiteOrigin: %v", ErrConfig, err))
		} else {
			origins = append(origins, o)
		}
	}
	for _, o := range i.cfg.TrustedOrigins {
		if !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	return origins, errs
}

// checkOrigin checks that o is an origin as browsers send it:
// scheme://host[:port], nothing more.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, " \t\r\n") {
		return fmt.Errorf("%q is not an origin such as https://app.example.com", o)
	}
	return nil
}

// probe is what Centrifugo answered about one channel of Check's
// connection: its subscribe reply, whether a join push came (the token
// asks for joins and leaves, which come where the namespace has them on),
// and, when asked, its presence_stats reply.
type probe struct {
	channel     string
	refused     *wsError // the subscription's
	recoverable bool
	joined      bool
	presence    uint32 // the presence_stats error code, 0 when it answered
}

// checkRound is how many channels Check's connection is subscribed to at
// a time: fewer than Centrifugo's client.channel_limit (128 by default).
const checkRound = 100

// probeRound subscribes the connection to each channel of probes with a
// token the app signed and unsubscribes, numbering the commands from *id
// on; with presence, it asks each subscribed channel's presence_stats in
// between. Centrifugo logs a refused presence_stats as a client command
// error ("permission denied" where presence is on, "not available" where
// it is off, in the config CentrifugoConfig writes): Check asks only
// where the joins already differ, so that a config that fits leaves no
// such line in Centrifugo's log.
func (i *Instant) probeRound(conn *wsConn, probes []probe, id *uint32, presence bool) error {
	next := func() uint32 { *id++; return *id }
	ids := make([]uint32, len(probes))
	var cmds []wsCommand
	for k, p := range probes {
		tok, err := i.sign(&User{ID: checkUser}, p.channel, nil, time.Now())
		if err != nil {
			return fmt.Errorf("signing a token: %v", err)
		}
		ids[k] = next()
		cmds = append(cmds, wsCommand{ID: ids[k], Subscribe: &wsSubscribe{Channel: p.channel, Token: tok.Token}})
	}
	replies, err := conn.exchange(cmds)
	if err != nil {
		return err
	}
	cmds = cmds[:0]
	for k := range probes {
		rep := replies[ids[k]]
		if probes[k].refused = rep.Error; rep.Error == nil {
			probes[k].recoverable = rep.Subscribe != nil && rep.Subscribe.Recoverable
			if presence {
				ids[k] = next()
				cmds = append(cmds, wsCommand{ID: ids[k], PresenceStats: &wsChannel{Channel: probes[k].channel}})
			}
		}
	}
	if len(cmds) > 0 {
		if replies, err = conn.exchange(cmds); err != nil {
			return err
		}
	}
	unsubscribe := cmds[:0:0]
	for k := range probes {
		if probes[k].refused == nil {
			if rep := replies[ids[k]]; presence && rep.Error != nil {
				probes[k].presence = rep.Error.Code
			}
			unsubscribe = append(unsubscribe, wsCommand{ID: next(), Unsubscribe: &wsChannel{Channel: probes[k].channel}})
		}
	}
	if len(unsubscribe) == 0 {
		return nil
	}
	// A join push comes after its subscribe reply, before these replies
	// on one node (with a Redis engine it may come later: then the
	// presence_stats of the next round decide).
	_, err = conn.exchange(unsubscribe)
	for k := range probes {
		probes[k].joined = conn.joined[probes[k].channel]
	}
	return err
}

func (p probe) presenceState() string {
	switch p.presence {
	case 0:
		return "presence open to subscribers' own queries (a config older than the presence route)"
	case codeNotAvailable:
		return "presence off"
	case codePermissionDenied:
		return "presence on"
	default:
		return fmt.Sprintf("presence answering error %d", p.presence)
	}
}

func (p probe) recoveryState() string {
	if p.recoverable {
		return "history and recovery on"
	}
	return "history and recovery off"
}

// Centrifugo's client protocol codes that Check reads.
const (
	codePermissionDenied = 103
	codeTokenExpired     = 109
	codeNotAvailable     = 108
	closeInvalidToken    = 3500
)

// checkBrowser connects to WebsocketURL as a page would: a handshake from
// each origin, then the connect and subscribe commands of the client
// protocol with tokens the app signed.
func (i *Instant) checkBrowser(ctx context.Context, namespaces []string) checkReport {
	wsURL := i.cfg.WebsocketURL
	r := checkReport{where: wsURL}
	unreachable := func(err error) error {
		var status *wsStatusError
		if errors.As(err, &status) {
			return fmt.Errorf("%w: the websocket URL browsers are given, %s, answered HTTP %d to a websocket handshake: "+
				"set WebsocketURL (INSTANT_WEBSOCKET_URL) to Centrifugo's /connection/websocket as browsers reach it", ErrUnreachable, wsURL, status.code)
		}
		return fmt.Errorf("%w: nothing answers as Centrifugo at the websocket URL browsers are given, %s (%v): "+
			"start Centrifugo there, or set WebsocketURL (INSTANT_WEBSOCKET_URL) to where browsers reach it", ErrUnreachable, wsURL, err)
	}
	origins, errs := i.checkOrigins()
	r.errs = append(r.errs, errs...)
	if i.cfg.SiteOrigin == "" && len(origins) == 0 {
		r.errs = append(r.errs, fmt.Errorf("%w: no browser origin checked: set SiteOrigin (INSTANT_SITE_ORIGIN) to where browsers load the app's pages, "+
			"which Centrifugo must allow (CentrifugoOptions.AllowedOrigins, client.allowed_origins): without it Check cannot tell whether pages may connect", ErrConfig))
	}
	var conn *wsConn
	var refused []string
	for _, origin := range origins {
		c, err := dialWebsocket(ctx, wsURL, origin)
		var status *wsStatusError
		switch {
		case errors.As(err, &status) && status.code == 403:
			refused = append(refused, origin)
		case err != nil:
			if conn != nil {
				conn.close()
			}
			r.errs = append(r.errs, unreachable(err))
			return r
		case conn == nil:
			conn = c
		default:
			c.close()
		}
	}
	const addOrigin = "add it to CentrifugoOptions.AllowedOrigins (client.allowed_origins) and regenerate the config"
	switch {
	case len(refused) > 0 && len(refused) == len(origins):
		r.noOrigin = true
		r.errs = append(r.errs, fmt.Errorf("%w: no browser origin allowed: centrifugo at %s refuses pages from %s (HTTP 403 to the websocket handshake), "+
			"so every browser is refused and retries: %s", ErrStaleConfig, wsURL, strings.Join(refused, " and "), strings.Replace(addOrigin, "it", "them", 1)))
	default:
		for _, origin := range refused {
			r.errs = append(r.errs, fmt.Errorf("%w: centrifugo at %s refuses pages from the origin %s (HTTP 403 to the websocket handshake): %s",
				ErrStaleConfig, wsURL, origin, addOrigin))
		}
	}
	if conn == nil {
		// No origin given, or each refused: the rest is checked without one.
		c, err := dialWebsocket(ctx, wsURL, "")
		if err != nil {
			r.errs = append(r.errs, unreachable(err))
			return r
		}
		conn = c
	}
	defer conn.close()

	fail := func(format string, args ...any) checkReport {
		if ctx.Err() != nil {
			r.errs = append(r.errs, fmt.Errorf("%w: no answer from centrifugo at %s within PublishTimeout", ErrUnreachable, wsURL))
		} else {
			r.errs = append(r.errs, fmt.Errorf("instant: centrifugo at %s: "+format, append([]any{wsURL}, args...)...))
		}
		return r
	}

	// connect, with a connection token the app signed.
	tok, err := i.sign(&User{ID: checkUser}, "", nil, time.Now())
	if err != nil {
		return fail("signing a token: %v", err)
	}
	replies, err := conn.exchange([]wsCommand{{ID: 1, Connect: &wsConnect{Token: tok.Token, Name: "instant-check"}}})
	var closed *websocket.CloseError
	switch {
	case errors.As(err, &closed) && closed.Code == closeInvalidToken:
		r.errs = append(r.errs, fmt.Errorf("%w: centrifugo at %s refused a connection token the app signed (disconnect %d %q): "+
			"set the app's TokenSecret (CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY) to Centrifugo's client.token.hmac_secret_key",
			ErrTokenSecret, wsURL, closed.Code, closed.Text))
		r.badToken = true
		return r
	case err != nil:
		return fail("%v", err)
	}
	if e := replies[1].Error; e != nil {
		if e.Code == codeTokenExpired {
			r.errs = append(r.errs, fmt.Errorf("%w: centrifugo at %s says a connection token the app has just signed has expired: "+
				"the clocks of the app's and Centrifugo's machines are apart by more than ConnectionTokenTTL", ErrTokenSecret, wsURL))
			return r
		}
		return fail("connect refused: error %d %s", e.Code, e.Message)
	}

	// One subscription without a namespace, then one in each, in rounds.
	probes := []probe{{channel: privatePrefix + checkChannel}}
	for _, ns := range namespaces {
		probes = append(probes, probe{channel: privatePrefix + ns + ":" + checkChannel})
	}
	id := uint32(1)
	for start := 0; start < len(probes); start += checkRound {
		round := probes[start:min(start+checkRound, len(probes))]
		if err := i.probeRound(conn, round, &id, false); err != nil {
			return fail("%v", err)
		}
	}
	for k, p := range probes {
		switch {
		case p.refused == nil:
		case p.refused.Code == codeUnknownChannel && k > 0:
			r.missing = append(r.missing, namespaces[k-1])
		default:
			r.errs = append(r.errs, fmt.Errorf("instant: centrifugo at %s refused a subscription to %s with a token the app signed: error %d %s",
				wsURL, p.channel, p.refused.Code, p.refused.Message))
		}
	}

	// What CentrifugoConfig writes gives every namespace the options of
	// channels without one.
	if probes[0].refused != nil {
		return r
	}
	// Presence is on only where private channels may be (and only when
	// CentrifugoOptions.Presence asked for it): a namespace of public
	// channels only is compared with the others on recovery alone. Where
	// the joins differ, presence_stats tells how (see probeRound).
	private := i.presenceNamespaces(true)
	comparable := func(k int) bool { return probes[k].refused == nil && private(namespaces[k-1]) == private("") }
	suspects := []int{0}
	for k := 1; k < len(probes); k++ {
		if comparable(k) && probes[k].joined != probes[0].joined {
			suspects = append(suspects, k)
		}
	}
	asked := map[int]bool{}
	if len(suspects) > 1 {
		for start := 0; start < len(suspects); start += checkRound {
			round := make([]probe, 0, checkRound)
			for _, k := range suspects[start:min(start+checkRound, len(suspects))] {
				round = append(round, probe{channel: probes[k].channel})
			}
			if err := i.probeRound(conn, round, &id, true); err != nil {
				return fail("%v", err)
			}
			for n, k := range suspects[start:min(start+checkRound, len(suspects))] {
				if round[n].refused == nil {
					probes[k].presence, asked[k] = round[n].presence, true
				}
			}
		}
	}
	base := probes[0]
	for k := 1; k < len(probes); k++ {
		p := probes[k]
		if p.refused != nil {
			continue
		}
		var diffs []string
		if asked[0] && asked[k] && p.presence != base.presence {
			diffs = append(diffs, p.presenceState()+" where channels without a namespace have "+base.presenceState())
		}
		if p.recoverable != base.recoverable {
			diffs = append(diffs, p.recoveryState()+" where channels without a namespace have "+base.recoveryState())
		}
		if len(diffs) > 0 {
			r.errs = append(r.errs, fmt.Errorf("%w: namespace %q at %s has %s, unlike the config CentrifugoConfig writes: regenerate it and restart Centrifugo",
				ErrStaleConfig, namespaces[k-1], wsURL, strings.Join(diffs, ", and ")))
		}
	}
	return r
}
