// instant's browser helper: an ES module, served by Register at
// <group>/client.js, that wraps centrifuge-js 5. The page passes the
// Centrifuge class it loaded from npm (package "centrifuge"):
//
//   import { Instant } from '/instant/client.js';
//   const live = new Instant(Centrifuge, { base: '/instant' });
//   live.on('event', (ev, channel) => console.log(channel, ev.message));
//   live.subscribe('$project-7');                            // any channel the site allows
//   await live.start();
//   await live.fetch('/orders', { method: 'POST', body });  // carries this tab's origin
//
// It asks the site which channels the visitor may read (GET channels),
// subscribes to those and to the ones the page names (subscribe), and
// connects. The connection token and the tokens of every "$" channel come
// from the site in one request (POST auth with "connection": true), and a
// token is reused while it is valid, so that a reconnect asks nothing. It
// moves channels the site or the server refuses to `denied`, tells each
// refusal of the server's through 'error' (its code and reason), asks the
// site again after the server closed the connection with a reconnect code
// (a logout, a role change), drops events it has already shown (by id) and events this tab
// caused (by origin: where the namespace allows a tags filter, Centrifugo
// does not even send them), and keeps presence lists of the private
// channels that have presence on: joins and leaves pushed by Centrifugo,
// on a snapshot the site gives (POST presence, for logged-in visitors only).

/**
 * @typedef {{name: string, level: string, group?: string}} ChannelInfo
 *   A channel as GET channels lists it. A channel the page subscribed to
 *   itself that the site does not list has level 'rule' (a "$" channel: a
 *   rule of the site granted it) or 'public'.
 * @typedef {{id: string, channel: string, message: string, event_class: string,
 *   data?: any, site: string, date: string, origin?: string}} InstantEvent
 *   An event as Broadcast sends it.
 * @typedef {{user: string, info: any, clients: number}} Member
 *   One user present on a channel, all their tabs together. info is what
 *   their token carries (the user's Info, or the info of the rule that
 *   granted the channel); {} when it carries none.
 * @typedef {'disconnected'|'connecting'|'connected'} State
 * @typedef {{base?: string, presence?: string[]|boolean, seen?: number, centrifuge?: object}} Options
 *   base: where Register mounted the routes (default '/instant');
 *   presence: the channels whose members to track (true: every private
 *   channel, the page's own included; default none; public channels show
 *   no members, and an anonymous visitor none: the site refuses them and
 *   'error' is emitted); seen: how many event ids to remember (10000; a
 *   resent BroadcastBatch is dropped only while its ids are remembered);
 *   centrifuge: more options for the Centrifuge client, e.g. {debug:
 *   true}, or {websocket} where there is no global WebSocket (getToken is
 *   the helper's own).
 */

/** The request header that carries this tab's origin id. */
export const ORIGIN_HEADER = 'X-Instant-Origin';

// The most channels the site signs in one request (MaxBatchChannels).
const BATCH_LIMIT = 100;
// The most channels whose members the site lists in one request (POST
// presence).
const PRESENCE_LIMIT = 20;
// How long the snapshots asked for are gathered into one request: the
// subscriptions of a connection are confirmed one reply at a time, and
// after an outage each in a message of its own.
const SNAPSHOT_WAIT_MS = 20;
// A token is reused until this long before it expires: a quarter of its
// lifetime for shorter tokens, and at least a second (the server's clock
// is read from its Date header, to the second).
const MARGIN_MS = 10000;
// How long a refusal of the site is kept for the subscription that asked
// for its token with others.
const REFUSAL_MS = 10000;
// The connection's key among the tokens: no channel is named ''.
const CONNECTION = '';

function isPrivate(name) {
  return name.startsWith('$');
}

// namespaceOf is a channel's namespace as Centrifugo reads it ('' for
// none), as the site's namespaceOf.
function namespaceOf(name) {
  const rest = isPrivate(name) ? name.slice(1) : name;
  const k = rest.indexOf(':');
  return k > 0 ? rest.slice(0, k) : '';
}

// checkChannel throws on a name the site would refuse (ValidChannel): one
// bad name would fail the whole token request it rides in.
function checkChannel(name) {
  if (typeof name !== 'string' || name === '') throw new TypeError('instant: a channel name must be a non-empty string');
  if (new TextEncoder().encode(name).length > 255) throw new TypeError('instant: channel name longer than 255 bytes: ' + name);
  if (/[\s\u0000-\u001f\u007f-\u009f]/.test(name)) {
    throw new TypeError('instant: channel name holds whitespace or a control character: ' + JSON.stringify(name));
  }
}

function randomId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// What usually causes a refusal, by Centrifugo's code, for the message
// of the 'error' event.
const CAUSES = {
  3500: "a token Centrifugo does not take: is the app's TokenSecret Centrifugo's client.token.hmac_secret_key? (./app check says)",
  102: "a namespace Centrifugo's config does not declare: write it again (./app centrifugo-config) and restart Centrifugo",
  103: 'Centrifugo refuses this subscription (permission denied)',
  109: 'a token that expired and was not renewed',
};

/**
 * refusal is the Error an 'error' event carries for a refusal: code and
 * reason as the server (or centrifuge-js) gave them, and channel when it is
 * about a channel.
 * @returns {Error & {code: number, reason: string, channel?: string}}
 */
function refusal(what, code, reason, channel) {
  const cause = CAUSES[code];
  const e = new Error('instant: ' + what + ': ' + code + ' ' + (reason || '') + (cause ? ' (' + cause + ')' : ''));
  e.code = code;
  e.reason = reason || '';
  if (channel !== undefined) e.channel = channel;
  return e;
}


// websocketURL turns the channels route's websocket_url into an absolute
// ws(s) address: the embedded server answers a path ("/instant/connection/
// websocket"), resolved against the page, as browsers older than 2024
// would not resolve it in the WebSocket constructor themselves.
function websocketURL(url) {
  if (!url || /^wss?:/i.test(url) || typeof location === 'undefined') return url;
  const u = new URL(url, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

export class Instant {
  /**
   * @param {any} Centrifuge the Centrifuge class of centrifuge-js 5
   * @param {Options} [options]
   */
  constructor(Centrifuge, options = {}) {
    if (typeof Centrifuge !== 'function') throw new TypeError('instant: pass the Centrifuge class of centrifuge-js 5');
    this.Centrifuge = Centrifuge;
    this.base = (options.base || '/instant').replace(/\/$/, '');
    this.presenceFor = options.presence || [];
    this.seenLimit = options.seen || 10000;
    this._centrifugeOptions = options.centrifuge || {};
    /**
     * This tab's origin id, sent on the app's requests (headers, fetch):
     * the one the site minted for this tab (GET channels answers it, bound
     * to the user logged in, so that the site ignores it from anyone
     * else), or a random one until then or when the site gives none.
     * Events carrying any id this tab has had are dropped.
     */
    this.origin = randomId();
    this._origins = [this.origin];
    /** @type {State} */
    this.state = 'disconnected';
    /** @type {any} The logged-in user, or null. */
    this.user = null;
    /** @type {ChannelInfo[]} Channels subscribed to. */
    this.channels = [];
    /** @type {string[]} Channels the site refused. */
    this.denied = [];
    this.client = null;
    this._listed = []; // ChannelInfo[] as GET channels last listed them
    this._own = new Set(); // channels the page subscribed to itself
    this._dropped = new Set(); // channels the page unsubscribed from
    this._subs = new Map(); // name → Subscription
    this._members = new Map(); // name → Map(user → Member)
    this._pushes = new Map(); // name → joins and leaves seen while its snapshot is asked for
    this._seen = new Set();
    this._handlers = new Map();
    this._asking = null;
    this._starting = null;
    this._run = 0; // counts start() and stop(): a start that a stop overtook does nothing
    this._uid = undefined; // the user ('' anonymous) the tokens were asked for, once known
    this._tokens = new Map(); // channel, or CONNECTION → {token, until, given: Set of consumers, sent}
    this._waiting = new Map(); // channel, or CONNECTION → the batch that asks for it
    this._batch = null; // the batch gathered in this tick
    this._snapshots = null; // the presence snapshots asked for in this task
    /** How many events this tab caused and so dropped. */
    this.droppedOwn = 0;
  }

  /**
   * on registers handler for an event: 'event' (ev, channel), 'state'
   * (state, reason), 'channels' (channels, denied), 'subscription' (channel,
   * 'subscribing'|'subscribed'|'unsubscribed', reason), 'here' (channel,
   * members), 'joining' (channel, member), 'leaving' (channel, member),
   * 'error' (error). An error the server caused carries its code and
   * reason (error.code, error.reason; error.channel for a channel's):
   * the connection closed for good (3500 "invalid token": another token
   * secret), a subscription refused (102 "unknown channel": a namespace
   * Centrifugo's config lacks; 103 "permission denied"; the channel also
   * moves to `denied`), or refused for a while (centrifuge-js tries
   * again). A request to the site that failed is an Error too.
   * @param {string} name
   * @param {Function} handler
   * @returns {this}
   */
  on(name, handler) {
    if (!this._handlers.has(name)) this._handlers.set(name, []);
    this._handlers.get(name).push(handler);
    return this;
  }

  _emit(name, ...args) {
    for (const h of this._handlers.get(name) || []) {
      try { h(...args); } catch (e) { console.error('instant: a handler of ' + name + ' failed', e); }
    }
  }

  /** here calls handler with a channel's members now and on every change. */
  here(channel, handler) {
    this.on('here', (ch, members) => { if (ch === channel) handler(members); });
    if (this._members.has(channel)) handler(this.members(channel));
    return this;
  }

  /** joining calls handler with each member who arrives on channel. */
  joining(channel, handler) { return this.on('joining', (ch, m) => { if (ch === channel) handler(m); }); }

  /** leaving calls handler with each member who leaves channel (their last tab). */
  leaving(channel, handler) { return this.on('leaving', (ch, m) => { if (ch === channel) handler(m); }); }

  /**
   * members returns the users present on channel, sorted by user ID.
   * @param {string} channel
   * @returns {Member[]}
   */
  members(channel) {
    const byUser = this._members.get(channel);
    if (!byUser) return [];
    return [...byUser.values()]
      .map((p) => ({ user: p.user, info: p.info, clients: p.clients.size }))
      .sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  }

  /**
   * headers returns init's headers with this tab's origin added: use it on
   * the app's own requests whose events this tab should not get back.
   * @param {HeadersInit} [headers]
   * @returns {Headers}
   */
  headers(headers) {
    const h = new Headers(headers || {});
    h.set(ORIGIN_HEADER, this.origin);
    return h;
  }

  /**
   * fetch is window.fetch with this tab's origin header and same-origin
   * credentials.
   * @param {RequestInfo} url
   * @param {RequestInit} [init]
   */
  fetch(url, init = {}) {
    return fetch(url, { credentials: 'same-origin', ...init, headers: this.headers(init.headers) });
  }

  _setState(state, reason) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state, reason || '');
  }

  async _channels() {
    const res = await fetch(this.base + '/channels', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error('instant: channels answered ' + res.status);
    return res.json();
  }

  /**
   * subscribe adds a channel beside the ones the site lists: any channel
   * the site allows the visitor, a rule's channel such as '$project-7'
   * included. It gets what the listed ones get (its token in the same
   * request as theirs, `denied` when the site refuses it, presence,
   * resubscribing after a reconnect, refresh() keeping it while the site
   * grants it), and its events arrive through on('event'). Before start()
   * it is remembered and subscribed at start. A name the site would not
   * take as a channel throws a TypeError.
   * @param {string} name
   * @returns {this}
   */
  subscribe(name) {
    checkChannel(name);
    this._own.add(name);
    this._dropped.delete(name);
    if (this.client && !this._subs.has(name)) {
      this._undeny(name);
      this._subscribe(name);
      this._changed();
    }
    return this;
  }

  /**
   * unsubscribe drops a channel, listed or the page's own: its events stop,
   * its members are forgotten, and refresh() or start() does not bring it
   * back (subscribe does).
   * @param {string} name
   * @returns {this}
   */
  unsubscribe(name) {
    this._own.delete(name);
    this._dropped.add(name);
    const sub = this._subs.get(name);
    if (sub) this._drop(name, sub, this.client);
    this._undeny(name);
    this._changed();
    return this;
  }

  /**
   * start asks the site for the channels, subscribes and connects. It
   * resolves once the subscriptions are set up (not yet confirmed). While
   * started it does nothing; after stop() it starts again.
   */
  start() {
    if (!this._starting) {
      const starting = this._start().finally(() => {
        if (this._starting === starting) this._starting = null;
      });
      this._starting = starting;
    }
    return this._starting;
  }

  async _start() {
    if (this.client) return;
    const run = ++this._run;
    const asked = Date.now();
    this._setState('connecting');
    let info;
    try {
      info = await this._channels();
    } catch (e) {
      if (run === this._run) {
        this._setState('disconnected', e.message);
        this._emit('error', e);
      }
      throw e;
    }
    if (run !== this._run) return; // stop() came first
    this.user = info.user || null;
    this._setOrigin(info);
    const client = new this.Centrifuge(websocketURL(info.websocket_url), {
      ...this._centrifugeOptions,
      getToken: () => this._token(CONNECTION, client),
    });
    this.client = client;
    this._listen(client);
    this._apply(info, asked);
    client.connect();
  }

  _listen(client) {
    const current = () => this.client === client;
    client.on('connecting', (ctx) => {
      if (!current()) return;
      this._setState('connecting', ctx.reason);
      if (ctx.code >= 4000 && ctx.code < 4500) {
        // The server closed the connection and asked clients to come back
        // (instant's Disconnect: a logout, a role change): connect as
        // whoever the session now holds, and ask the site again which
        // channels: the new token rides in the same request as the
        // page's own channels' (refresh).
        this._renewConnection();
        this._ask([CONNECTION]);
        this.refresh();
      } else if (!this._fresh(this._tokens.get(CONNECTION))) {
        // Come back with a new token rather than offer one that expired.
        this._renewConnection();
      }
    });
    let wasConnected = false;
    client.on('connected', () => {
      if (!current()) return;
      wasConnected = true;
      this._setState('connected');
    });
    client.on('disconnected', (ctx) => {
      if (!current()) return;
      this._setState('disconnected', ctx.reason);
      // A connection that was up, closed for good by the server because its
      // user changed under it (a token for someone else: 3500, or a forced
      // disconnect: 3503): ask the site again, then connect once more as
      // whoever the session now holds.
      if (wasConnected && (ctx.code === 3500 || ctx.code === 3503)) {
        wasConnected = false;
        this._renewConnection();
        setTimeout(() => {
          this._ask([CONNECTION]);
          this.refresh().then(() => { if (current()) client.connect(); });
        }, 500);
      } else if (ctx.code !== 0) {
        // Closed for good, and not by the page (code 0: disconnect
        // called): the server refused the connection (3500 invalid token,
        // ...), or the site refused its token (1 unauthorized).
        this._emit('error', refusal('the connection was closed', ctx.code, ctx.reason));
      }
    });
    client.on('error', (ctx) => {
      // A refusal of the server's that centrifuge-js retries (not an
      // expired token: it asks for a new one).
      const e = current() && ctx && ctx.type === 'connect' && ctx.error;
      if (e && e.code >= 100 && e.code !== 109) this._emit('error', refusal('centrifugo refused the connection', e.code, e.message));
    });
  }

  // _renewConnection makes the client's next connection attempt ask for a
  // new token.
  _renewConnection() {
    this._tokens.delete(CONNECTION);
    if (this.client) this.client.setToken('');
  }

  /**
   * stop closes the connection and lets go of the client and its
   * subscriptions. start() starts again, with the channels the page
   * subscribed to itself.
   */
  stop() {
    this._run++;
    this._starting = null;
    const client = this.client;
    this.client = null;
    if (client) {
      client.disconnect();
      for (const [name, sub] of [...this._subs]) this._drop(name, sub, client);
      if (typeof client.removeAllListeners === 'function') client.removeAllListeners();
    }
    this._setState('disconnected', 'stop called');
    this._changed();
  }

  /**
   * refresh asks the site again which channels the visitor may read:
   * subscribes to new ones, drops and lists as denied those no longer
   * granted. The channels the page subscribed to itself are kept unless the
   * site now refuses their tokens (asked for in the same breath, in one
   * request). Calls made together share the requests.
   */
  refresh() {
    if (!this._asking) {
      const asked = Date.now();
      const own = this.client ? [...this._own].filter(isPrivate) : [];
      this._asking = Promise.all([this._channels(), this._verdicts(own)])
        .then(([info, verdicts]) => {
          this.user = info.user || null;
          this._setOrigin(info);
          this._apply(info, asked, verdicts);
        })
        .catch((e) => this._emit('error', e))
        .finally(() => { this._asking = null; });
    }
    return this._asking;
  }

  // _verdicts asks the site for the tokens of names: channel → answer.
  async _verdicts(names) {
    const answers = names.length ? await this._ask(names) : [];
    return new Map(names.map((name, k) => [name, answers[k]]));
  }

  // _apply brings the subscriptions in line with the site's answers: info
  // from GET channels, asked for at `asked`, and on refresh the verdicts on
  // the page's own "$" channels. At start (no verdicts) every channel the
  // page wants is tried, denied ones included.
  _apply(info, asked, verdicts) {
    const uid = info.user && info.user.id != null ? String(info.user.id) : '';
    const userChanged = this._uid !== undefined && uid !== this._uid;
    this._uid = uid;
    if (userChanged) this._forget(asked);
    this._listed = info.channels || [];
    if (!this.client) return;
    const listed = new Set(this._listed.map((c) => c.name));
    const verdict = (name) => (verdicts && verdicts.get(name)) || {};
    const refused = (name) => verdict(name).status === 401 || verdict(name).status === 403;
    // Held channels the site no longer grants: a listed one is dropped from
    // the list, the page's own one refused its token.
    for (const [name, sub] of [...this._subs]) {
      const ownOnly = !listed.has(name) && this._own.has(name);
      if (ownOnly ? refused(name) : !listed.has(name)) this._deny(name, sub);
    }
    const wanted = new Set([...listed].filter((name) => !this._dropped.has(name)));
    for (const name of this._own) wanted.add(name);
    const added = new Set();
    for (const name of wanted) {
      if (this._subs.has(name)) continue;
      if (!listed.has(name)) {
        if (refused(name)) {
          this._deny(name);
          continue;
        }
        // An own channel denied before is tried again at start, or when
        // the site now gives its token.
        if (verdicts && this.denied.includes(name) && !verdict(name).token) continue;
      }
      this._undeny(name);
      this._subscribe(name);
      added.add(name);
    }
    // The tokens the other "$" subscriptions hold name someone else now.
    if (userChanged) {
      for (const [name, sub] of [...this._subs]) {
        if (!isPrivate(name) || added.has(name)) continue;
        this._drop(name, sub, this.client);
        this._subscribe(name);
      }
    }
    this._changed();
  }

  // _forget drops the tokens asked for before `before`: they are for
  // another user.
  _forget(before) {
    for (const [key, t] of [...this._tokens]) {
      if (t.sent < before) this._tokens.delete(key);
    }
    if (this.client && !this._tokens.has(CONNECTION)) this.client.setToken('');
  }

  // _deny moves name to denied, letting go of its subscription if held.
  _deny(name, sub) {
    if (sub) this._drop(name, sub, this.client);
    this._tokens.delete(name);
    if (!this.denied.includes(name)) this.denied.push(name);
    this._changed();
  }

  _undeny(name) {
    if (this.denied.includes(name)) this.denied = this.denied.filter((n) => n !== name);
  }

  // _drop lets go of a subscription: removed from client, its handlers
  // and members forgotten.
  _drop(name, sub, client) {
    this._subs.delete(name);
    this._pushes.delete(name);
    if (client) client.removeSubscription(sub);
    if (typeof sub.removeAllListeners === 'function') sub.removeAllListeners();
    if (this._members.delete(name)) this._emit('here', name, []);
  }

  // _changed updates `channels` and tells the handlers of 'channels'.
  _changed() {
    const held = this._listed.filter((c) => this._subs.has(c.name));
    const listed = new Set(held.map((c) => c.name));
    for (const name of this._own) {
      if (this._subs.has(name) && !listed.has(name)) held.push({ name, level: isPrivate(name) ? 'rule' : 'public' });
    }
    this.channels = held;
    this._emit('channels', this.channels, this.denied);
  }

  _tracksPresence(name) {
    return this.presenceFor === true ? isPrivate(name) : this.presenceFor.includes(name);
  }

  _subscribe(name) {
    const opts = {};
    let wasSubscribed = false;
    if (isPrivate(name)) {
      opts.getToken = () => this._token(name, sub).catch((e) => {
        if (e instanceof this.Centrifuge.UnauthorizedError) queueMicrotask(() => this._refused(name, sub, wasSubscribed));
        throw e;
      });
    }
    // "To others": Centrifugo is asked not to send this tab the events it
    // caused (Broadcast tags them with their origin), where the namespace
    // allows a tags filter; _publication drops what still comes.
    let filter = this._notMine(name);
    if (filter) opts.tagsFilter = filter;
    // 107 (bad request) refusing a subscription with a filter: the
    // namespace has no allow_tags_filter (a Centrifugo config older than
    // the app's). It is subscribed again without one.
    const noFilter = (ctx) => !!filter && !!ctx && ctx.code === 107;
    const sub = this.client.newSubscription(name, opts);
    this._subs.set(name, sub);
    const current = () => this._subs.get(name) === sub;
    for (const state of ['subscribing', 'subscribed', 'unsubscribed']) {
      sub.on(state, (ctx) => {
        if (current() && !(state === 'unsubscribed' && noFilter(ctx))) this._emit('subscription', name, state, (ctx && ctx.reason) || '');
      });
    }
    sub.on('subscribed', () => { wasSubscribed = true; });
    sub.on('unsubscribed', (ctx) => {
      if (!current() || !ctx) return;
      if (noFilter(ctx)) {
        filter = null;
        this._unfiltered.add(namespaceOf(name)); // its other channels too
        sub.setTagsFilter(null);
        sub.subscribe();
      } else if (ctx.code >= 100) {
        // The server refused it for good, whatever refused it: 102 unknown
        // channel (a namespace its config does not declare), 103
        // permission denied (e.g. a channel without "$" in a namespace
        // that lets no client subscribe), an unsubscribe of the server's.
        // (The site's refusal, code 1, is _refused's.)
        this._deny(name, sub);
        this._emit('error', refusal('centrifugo refused ' + name, ctx.code, ctx.reason, name));
      }
    });
    sub.on('error', (ctx) => {
      // A refusal centrifuge-js retries (not an expired token: it asks
      // for a new one).
      const e = current() && ctx && ctx.type === 'subscribe' && ctx.error;
      if (e && e.code >= 100 && e.code !== 109) this._emit('error', refusal('centrifugo refused ' + name + ' for now', e.code, e.message, name));
    });
    sub.on('publication', (ctx) => { if (current()) this._publication(name, ctx.data); });
    if (this._tracksPresence(name)) {
      sub.on('subscribed', () => { if (current()) this._loadPresence(name, sub); });
      sub.on('join', (ctx) => { if (current()) this._join(name, ctx.info); });
      sub.on('leave', (ctx) => { if (current()) this._leave(name, ctx.info); });
    }
    sub.subscribe();
  }

  // _notMine is the tags filter a subscription to name is made with:
  // publications whose "origin" tag is none of the ids this tab has had
  // (an event without the tag passes), or null in a namespace where
  // Centrifugo refused a filter. The ids are read each time centrifuge-js
  // sends the subscribe, so a resubscribe (after a reconnect) carries a
  // newer one the site gave meanwhile (until then, _publication drops it).
  _notMine(name) {
    this._unfiltered = this._unfiltered || new Set(); // namespaces ('' for none) without filters
    if (this._unfiltered.has(namespaceOf(name))) return null;
    const tab = this;
    return { key: 'origin', cmp: 'nin', get vals() { return tab._origins.slice(); } };
  }

  // _refused handles a token the site refused: the visitor logged out or
  // lost a role since the page loaded, or was never granted the channel.
  _refused(name, sub, wasSubscribed) {
    if (this._subs.get(name) !== sub) return;
    this._deny(name, sub);
    // A channel granted before: what else changed?
    if (wasSubscribed || this._listed.some((c) => c.name === name)) this.refresh();
  }

  // ---- tokens ----------------------------------------------------------
  //
  // centrifuge-js asks for the connection's token (getToken of the client)
  // and for each "$" subscription's (getToken of the subscription), when it
  // has none or the one it has is ending; it keeps them across reconnects.
  // Each answer comes from what the site gave, or from one request (POST
  // auth) that asks for every token about to be needed.

  // _token answers the token of key (a channel, or CONNECTION) for
  // consumer (the client, or a subscription): the one kept while it is
  // valid, unless consumer had it already (it asks again because that one is
  // ending, or was refused as expired); else the site's. A refusal the site
  // gave lately is kept the same way.
  async _token(key, consumer) {
    // While the site is asked again which channels, connect after the
    // answer: the subscriptions it replaces must not come back first, with
    // tokens for whoever the session held before.
    if (key === CONNECTION && this._asking) await this._asking;
    let a = this._tokens.get(key);
    if (!this._fresh(a) || a.given.has(consumer)) [a] = await this._ask([key]);
    if (a.token) {
      a.given.add(consumer);
      return a.token;
    }
    const what = key === CONNECTION ? 'the connection' : key;
    if (a.status === 401 || a.status === 403) {
      throw new this.Centrifuge.UnauthorizedError('instant: the site refused ' + what + ' (' + a.status + ')');
    }
    throw a.error || new Error('instant: the site answered ' + a.status + ' for ' + what);
  }

  _fresh(t) {
    return !!t && t.until > Date.now();
  }

  // _ask asks the site for the tokens of keys. The keys asked for in this
  // tick (centrifuge-js asks for its subscriptions' tokens in one loop) go
  // in one request, with every other token about to be needed (_due); a
  // key already asked for waits for that request. It resolves to one
  // answer per key: the token kept {token, until, given, sent}, {status,
  // ...} when the site refused it, or {error}.
  _ask(keys) {
    if (!this._batch) {
      const batch = { keys: new Set() };
      this._batch = batch;
      batch.answers = Promise.resolve().then(async () => {
        this._batch = null;
        for (const key of this._due()) this._enlist(batch, key);
        try {
          return await this._request([...batch.keys]);
        } finally {
          for (const key of batch.keys) {
            if (this._waiting.get(key) === batch) this._waiting.delete(key);
          }
        }
      });
    }
    for (const key of keys) this._enlist(this._batch, key);
    return Promise.all(keys.map((key) => this._waiting.get(key).answers.then((answers) => answers.get(key))));
  }

  _enlist(batch, key) {
    if (this._waiting.has(key)) return;
    batch.keys.add(key);
    this._waiting.set(key, batch);
  }

  // _due lists the tokens about to be needed: the connection's when the
  // client holds one that is ending, and every "$" subscription's that is
  // missing or ending. Tokens given together end together: asked for
  // together, a page's tokens cost one request, not one per channel.
  _due() {
    const due = [];
    const conn = this._tokens.get(CONNECTION);
    if (this.client && conn && conn.given.has(this.client) && !this._fresh(conn)) due.push(CONNECTION);
    for (const [name, sub] of this._subs) {
      if (isPrivate(name) && sub.state !== 'unsubscribed' && !this._fresh(this._tokens.get(name))) due.push(name);
    }
    return due;
  }

  // _request asks POST auth for the tokens of keys, BATCH_LIMIT channels a
  // request, and keeps those it gets. It never fails: a failure is the
  // answer of each key.
  async _request(keys) {
    const answers = new Map();
    const connection = keys.includes(CONNECTION);
    const channels = keys.filter((key) => key !== CONNECTION);
    const parts = [];
    for (let k = 0; k < channels.length || (k === 0 && connection); k += BATCH_LIMIT) {
      parts.push(channels.slice(k, k + BATCH_LIMIT));
    }
    await Promise.all(parts.map((part, k) => this._requestPart(part, connection && k === 0, answers)));
    return answers;
  }

  async _requestPart(channels, connection, answers) {
    const keys = connection ? [CONNECTION, ...channels] : channels;
    const answerAll = (a) => { for (const key of keys) answers.set(key, a); };
    const sent = Date.now();
    let res, received, out;
    try {
      res = await fetch(this.base + '/auth', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(connection ? { channels, connection: true } : { channels }),
      });
      received = Date.now();
      if (!res.ok) return answerAll({ status: res.status });
      out = await res.json();
      if (!out || typeof out !== 'object') throw new Error('instant: auth answered ' + JSON.stringify(out));
    } catch (e) {
      return answerAll({ error: e });
    }
    // A token's lifetime by the server's clock (its Date header), counted
    // on the page's: the two clocks may disagree.
    const served = Date.parse((res.headers && res.headers.get('Date')) || '');
    const now = Number.isNaN(served) ? received : served;
    const keep = (key, a) => {
      const life = a.expires_at * 1000 - now;
      const t = { token: a.token, until: received + life - Math.min(MARGIN_MS, Math.max(1000, life / 4)), given: new Set(), sent };
      this._tokens.set(key, t);
      answers.set(key, t);
    };
    if (connection && out.connection && out.connection.token) keep(CONNECTION, out.connection);
    for (const a of Array.isArray(out.channels) ? out.channels : []) {
      if (!a || !channels.includes(a.channel) || answers.has(a.channel)) continue;
      if (a.token) {
        keep(a.channel, a);
      } else if (a.status === 401 || a.status === 403) {
        // Kept too: the subscription asked for with others takes it
        // without asking again.
        const t = { status: a.status, until: received + REFUSAL_MS, given: new Set(), sent };
        this._tokens.set(a.channel, t);
        answers.set(a.channel, t);
      } else {
        answers.set(a.channel, { status: a.status || 500 });
      }
    }
    for (const key of keys) {
      if (!answers.has(key)) answers.set(key, { error: new Error('instant: auth answered nothing for ' + (key || 'the connection')) });
    }
  }

  // ---- events and presence ---------------------------------------------

  // _setOrigin takes the origin id the site minted (a new one on each
  // answer: after a login or logout only the newest is the user's), and
  // remembers the last few, whose events are still on their way.
  _setOrigin(info) {
    if (typeof info.origin !== 'string' || !info.origin || info.origin === this.origin) return;
    this.origin = info.origin;
    this._origins.push(info.origin);
    if (this._origins.length > 8) this._origins.shift();
  }

  _publication(channel, ev) {
    if (!ev || typeof ev !== 'object') return;
    if (ev.origin && this._origins.includes(ev.origin)) { // this tab caused it
      this.droppedOwn++;
      return;
    }
    if (ev.id) {
      const key = channel + '\n' + ev.id;
      if (this._seen.has(key)) return; // a retry, or a recovered copy
      this._seen.add(key);
      if (this._seen.size > this.seenLimit) this._seen.delete(this._seen.values().next().value);
    }
    if (ev.event_class === 'instant.reauthorized' && this.channels.some((c) => c.name === channel && c.level === 'personal')) {
      // The site changed what this user may read (Reauthorize): ask again,
      // and once more when it says its other servers follow a moment later.
      this.refresh();
      if (ev.data && ev.data.again_ms > 0) setTimeout(() => this.refresh(), Math.min(ev.data.again_ms, 10000));
      return;
    }
    this._emit('event', ev, channel);
  }

  // A channel's members: Map(user → {user, info, clients: Set of client ids}),
  // so that a join seen both in the snapshot and as a push counts once.
  // The snapshot comes from the site (POST presence: Centrifugo lets no
  // client ask for it); joins and leaves that arrive while it is asked
  // for are replayed on it, in order: the snapshot may predate them.
  async _loadPresence(name, sub) {
    const pushes = [];
    this._pushes.set(name, pushes);
    try {
      const a = await this._snapshot(name);
      if (this._pushes.get(name) !== pushes) return; // a newer snapshot is on its way
      if (this._subs.get(name) !== sub) return; // refused (or replaced) meanwhile
      if (!Array.isArray(a.clients)) {
        throw a.error || new Error('instant: the site answered ' + (a.status || 'nothing') + ' for the members of ' + name);
      }
      const byUser = new Map();
      for (const c of a.clients) this._add(byUser, c && { user: c.user, client: c.client, chanInfo: c.info });
      for (const [kind, ci] of pushes) {
        if (kind === 'join') this._add(byUser, ci);
        else this._remove(byUser, ci);
      }
      this._members.set(name, byUser);
      this._emit('here', name, this.members(name));
    } catch (e) {
      if (this._subs.get(name) === sub) this._emit('error', e);
    } finally {
      if (this._pushes.get(name) === pushes) this._pushes.delete(name);
    }
  }

  // _snapshot asks the site for the members of name. The snapshots asked
  // for in this task (the subscriptions a connection confirms, each in a
  // promise of its own) go in one request, PRESENCE_LIMIT channels a
  // request. It resolves to the channel's answer: {channel, clients},
  // {channel, status}, {status} when the site refused the request, or
  // {error}.
  _snapshot(name) {
    if (!this._snapshots) {
      const batch = { names: new Set() };
      this._snapshots = batch;
      batch.answers = new Promise((resolve) => setTimeout(resolve, SNAPSHOT_WAIT_MS)).then(() => {
        this._snapshots = null;
        return this._requestPresence([...batch.names]);
      });
    }
    const batch = this._snapshots;
    batch.names.add(name);
    return batch.answers.then((answers) => answers.get(name));
  }

  // _requestPresence asks POST presence for the members of names. It never
  // fails: a failure is the answer of each name.
  async _requestPresence(names) {
    const answers = new Map();
    const parts = [];
    for (let k = 0; k < names.length; k += PRESENCE_LIMIT) parts.push(names.slice(k, k + PRESENCE_LIMIT));
    await Promise.all(parts.map(async (channels) => {
      const answerAll = (a) => { for (const name of channels) answers.set(name, a); };
      let out;
      try {
        const res = await fetch(this.base + '/presence', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ channels }),
        });
        if (!res.ok) return answerAll({ status: res.status });
        out = await res.json();
      } catch (e) {
        return answerAll({ error: e });
      }
      for (const a of Array.isArray(out && out.channels) ? out.channels : []) {
        if (a && channels.includes(a.channel) && !answers.has(a.channel)) answers.set(a.channel, a);
      }
      for (const name of channels) {
        if (!answers.has(name)) answers.set(name, { error: new Error('instant: presence answered nothing for ' + name) });
      }
    }));
    return answers;
  }

  _add(byUser, ci) {
    if (!ci || !ci.user) return null; // anonymous subscribers are not members
    let p = byUser.get(ci.user);
    const fresh = !p;
    if (fresh) {
      // The channel's own info (the rule's, else User.Info); connection
      // tokens carry none.
      const info = ci.chanInfo;
      p = { user: ci.user, info: info == null ? {} : info, clients: new Set() };
      byUser.set(ci.user, p);
    }
    p.clients.add(ci.client);
    return fresh ? p : null;
  }

  _join(name, ci) {
    const pending = this._pushes.get(name);
    if (pending) pending.push(['join', ci]);
    if (!this._members.has(name)) this._members.set(name, new Map());
    const fresh = this._add(this._members.get(name), ci);
    if (fresh) this._emit('joining', name, { user: fresh.user, info: fresh.info, clients: 1 });
    this._emit('here', name, this.members(name));
  }

  _leave(name, ci) {
    const pending = this._pushes.get(name);
    if (pending) pending.push(['leave', ci]);
    const byUser = this._members.get(name);
    if (!byUser) return;
    const gone = this._remove(byUser, ci);
    if (gone) this._emit('leaving', name, { user: gone.user, info: gone.info, clients: 0 });
    if (gone !== undefined) this._emit('here', name, this.members(name));
  }

  // _remove takes a client off its user: the member when that was the
  // user's last client, null when the user is still there, undefined when
  // the client was not known.
  _remove(byUser, ci) {
    const p = ci && byUser.get(ci.user);
    if (!p || !p.clients.has(ci.client)) return undefined;
    p.clients.delete(ci.client);
    if (p.clients.size > 0) return null;
    byUser.delete(ci.user);
    return p;
  }
}
