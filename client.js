// instant's browser helper: an ES module, served by Register at
// <group>/client.js, that wraps centrifuge-js 5. The page passes the
// Centrifuge class it loaded from npm (package "centrifuge"):
//
//   import { Instant } from '/instant/client.js';
//   const live = new Instant(Centrifuge, { base: '/instant' });
//   live.on('event', (ev, channel) => console.log(channel, ev.message));
//   await live.start();
//   await live.fetch('/orders', { method: 'POST', body });  // carries this tab's origin
//
// It asks the site which channels the visitor may read (GET channels),
// connects with a connection token (POST connection_token), subscribes to
// each channel (a "$" channel with a token from POST subscription_token),
// moves channels the site refuses to `denied`, asks the site again after the
// server closed the connection with a reconnect code (a logout, a role
// change), drops events it has already shown (by id) and events this tab
// caused (by origin), and keeps presence lists of the channels that have
// presence on.

/**
 * @typedef {{name: string, level: string, group?: string}} ChannelInfo
 *   A channel as GET channels lists it.
 * @typedef {{id: string, channel: string, message: string, event_class: string,
 *   data?: any, site: string, date: string, origin?: string}} InstantEvent
 *   An event as Broadcast sends it.
 * @typedef {{user: string, info: any, clients: number}} Member
 *   One user present on a channel, all their tabs together.
 * @typedef {'disconnected'|'connecting'|'connected'} State
 * @typedef {{base?: string, presence?: string[]|boolean, seen?: number}} Options
 *   base: where Register mounted the routes (default '/instant');
 *   presence: the channels whose members to track (true: every private
 *   channel; default none); seen: how many event ids to remember (10000; a
 *   resent BroadcastBatch is dropped only while its ids are remembered).
 */

/** The request header that carries this tab's origin id. */
export const ORIGIN_HEADER = 'X-Instant-Origin';

function randomId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
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
    /** This tab's origin id: events carrying it are dropped. */
    this.origin = randomId();
    /** @type {State} */
    this.state = 'disconnected';
    /** @type {any} The logged-in user, or null. */
    this.user = null;
    /** @type {ChannelInfo[]} Channels subscribed to. */
    this.channels = [];
    /** @type {string[]} Channels the site refused. */
    this.denied = [];
    this.client = null;
    this._subs = new Map(); // name → Subscription
    this._members = new Map(); // name → Map(user → Member)
    this._pushes = new Map(); // name → joins and leaves seen while its snapshot is asked for
    this._seen = new Set();
    this._handlers = new Map();
    this._asking = null;
    /** How many events this tab caused and so dropped. */
    this.droppedOwn = 0;
  }

  /**
   * on registers handler for an event: 'event' (ev, channel), 'state'
   * (state, reason), 'channels' (channels, denied), 'subscription' (channel,
   * 'subscribing'|'subscribed'|'unsubscribed', reason), 'here' (channel,
   * members), 'joining' (channel, member), 'leaving' (channel, member),
   * 'error' (error).
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

  async _post(route, body) {
    const res = await fetch(this.base + '/' + route, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body || {}),
    });
    if (res.status === 401 || res.status === 403) {
      throw new this.Centrifuge.UnauthorizedError(route + ' refused: ' + res.status);
    }
    if (!res.ok) throw new Error('instant: ' + route + ' answered ' + res.status);
    return (await res.json()).token;
  }

  async _channels() {
    const res = await fetch(this.base + '/channels', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error('instant: channels answered ' + res.status);
    return res.json();
  }

  /**
   * start asks the site for the channels, connects and subscribes. It
   * resolves once the subscriptions are set up (not yet confirmed).
   */
  async start() {
    this._setState('connecting');
    let info;
    try {
      info = await this._channels();
    } catch (e) {
      this._setState('disconnected', e.message);
      this._emit('error', e);
      throw e;
    }
    this.user = info.user || null;
    this.client = new this.Centrifuge(info.websocket_url, {
      getToken: () => this._post('connection_token', {}),
    });
    this.client.on('connecting', (ctx) => {
      this._setState('connecting', ctx.reason);
      // The server closed the connection and asked clients to come back
      // (instant's Disconnect: a logout, a role change): the channels
      // granted may have changed, so ask the site again.
      if (ctx.code >= 4000 && ctx.code < 4500) this.refresh();
    });
    let wasConnected = false;
    this.client.on('connected', () => { wasConnected = true; this._setState('connected'); });
    this.client.on('disconnected', (ctx) => {
      this._setState('disconnected', ctx.reason);
      // A connection that was up, closed for good by the server because its
      // user changed under it (a refreshed token for someone else: 3500, or
      // a forced disconnect: 3503): ask the site again, then connect once
      // more as whoever the session now holds.
      if (wasConnected && (ctx.code === 3500 || ctx.code === 3503)) {
        wasConnected = false;
        setTimeout(() => this.refresh().then(() => this.client.connect()), 500);
      }
    });
    this._apply(info);
    this.client.connect();
  }

  /** stop closes the connection. */
  stop() {
    if (this.client) this.client.disconnect();
  }

  /**
   * refresh asks the site again which channels the visitor may read:
   * subscribes to new ones, drops and lists as denied those no longer
   * granted. Calls made together share one request.
   */
  refresh() {
    if (!this._asking) {
      this._asking = this._channels()
        .then((info) => { this.user = info.user || null; this._apply(info); })
        .catch((e) => this._emit('error', e))
        .finally(() => { this._asking = null; });
    }
    return this._asking;
  }

  _apply(info) {
    const granted = info.channels || [];
    const names = new Set(granted.map((c) => c.name));
    for (const [name, sub] of this._subs) {
      if (!names.has(name)) this._deny(name, sub);
    }
    for (const ch of granted) {
      if (!this._subs.has(ch.name)) this._subscribe(ch.name);
    }
    this.channels = granted.filter((c) => this._subs.has(c.name));
    this.denied = this.denied.filter((n) => !this._subs.has(n));
    this._emit('channels', this.channels, this.denied);
  }

  _deny(name, sub) {
    if (sub) {
      this._subs.delete(name);
      this.client.removeSubscription(sub);
    }
    if (this._members.delete(name)) this._emit('here', name, []);
    if (!this.denied.includes(name)) this.denied.push(name);
    this.channels = this.channels.filter((c) => c.name !== name);
    this._emit('channels', this.channels, this.denied);
  }

  _tracksPresence(name) {
    return this.presenceFor === true ? name.startsWith('$') : this.presenceFor.includes(name);
  }

  _subscribe(name) {
    const opts = {};
    if (name.startsWith('$')) {
      opts.getToken = () => this._post('subscription_token', { channel: name }).catch((e) => {
        if (e instanceof this.Centrifuge.UnauthorizedError) {
          // Refused: logged out or lost a role since the page loaded.
          queueMicrotask(() => { this._deny(name, this._subs.get(name)); this.refresh(); });
        }
        throw e;
      });
    }
    const sub = this.client.newSubscription(name, opts);
    this._subs.set(name, sub);
    for (const state of ['subscribing', 'subscribed', 'unsubscribed']) {
      sub.on(state, (ctx) => this._emit('subscription', name, state, (ctx && ctx.reason) || ''));
    }
    sub.on('publication', (ctx) => this._publication(name, ctx.data));
    if (this._tracksPresence(name)) {
      sub.on('subscribed', () => this._loadPresence(name, sub));
      sub.on('join', (ctx) => this._join(name, ctx.info));
      sub.on('leave', (ctx) => this._leave(name, ctx.info));
    }
    sub.subscribe();
  }

  _publication(channel, ev) {
    if (!ev || typeof ev !== 'object') return;
    if (ev.origin && ev.origin === this.origin) { // this tab caused it
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
  // Joins and leaves that arrive while the snapshot is asked for are
  // replayed on it, in order: the snapshot may predate them.
  async _loadPresence(name, sub) {
    const pushes = [];
    this._pushes.set(name, pushes);
    try {
      const res = await sub.presence();
      if (this._pushes.get(name) !== pushes) return; // a newer snapshot is on its way
      if (this._subs.get(name) !== sub) return; // refused (or replaced) meanwhile
      const byUser = new Map();
      for (const ci of Object.values(res.clients || {})) this._add(byUser, ci);
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

  _add(byUser, ci) {
    if (!ci || !ci.user) return null; // anonymous subscribers are not members
    let p = byUser.get(ci.user);
    const fresh = !p;
    if (fresh) {
      p = { user: ci.user, info: ci.chanInfo || ci.connInfo || null, clients: new Set() };
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
