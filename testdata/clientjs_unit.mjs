// Unit tests of client.js's own logic (presence bookkeeping, dropping
// repeats and this tab's own events, the channels a page subscribes to
// itself, start after stop, and how many token requests a page makes)
// against a stand-in for centrifuge-js and for the site that the script
// drives by hand. The stand-in keeps tokens as centrifuge-js 5 does: the
// client asks getToken when it has no connection token or the server
// refused it as expired (or after setToken('')), a subscription when it has
// none or the server refused it as expired; both keep theirs across
// reconnects. The browser tests in example_app and TestClientJSLive run
// client.js against the real centrifuge-js and Centrifugo; these time
// pushes and replies in orders a live server rarely shows, and move the
// clocks. Each case is a test of node:test, run in order (they share the
// stand-ins): `node --test testdata/clientjs_unit.mjs`, which
// TestClientJSLogic runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';

// ---- clocks: the page's (Date.now) and the site's, which may differ -----

const realNow = Date.now;
let elapsed = 0; // moved by hand: tokens expire without waiting
let pageSkew = 0; // the page's clock minus the site's
const siteNow = () => realNow() + elapsed;
Date.now = () => siteNow() + pageSkew;

// ---- the site: GET channels, POST auth and POST presence ------------------

const site = {
  user: { id: '1', username: 'ann' },
  channels: [],
  minted: null, // the origin id GET channels answers (none: an older site)
  refuse: new Set(), // channels the site refuses
  connTTL: 600, // seconds
  subTTL: 300,
  calls: [], // {path, body}
  serial: 0,
  expiry: new Map(), // token → Unix seconds
  reset(channels) {
    this.user = { id: '1', username: 'ann' };
    this.channels = channels;
    this.refuse = new Set();
    this.calls = [];
    this.minted = null;
  },
  count(path) { return this.calls.filter((c) => c.path === path).length; },
  sign(sub, ttl) {
    const exp = Math.floor(siteNow() / 1000) + ttl;
    const token = 'tok' + ++this.serial + ':' + sub;
    this.expiry.set(token, exp);
    return { token, expires_at: exp };
  },
  expired(token) { return !this.expiry.has(token) || this.expiry.get(token) * 1000 <= siteNow(); },
};

const answer = (status, body) => new Response(JSON.stringify(body), {
  status,
  headers: { 'Content-Type': 'application/json', Date: new Date(siteNow()).toUTCString() },
});

globalThis.fetch = async (url, init = {}) => {
  await new Promise((r) => setTimeout(r, 1)); // the network
  const path = String(url);
  const body = init.body ? JSON.parse(init.body) : undefined;
  site.calls.push({ path, body });
  if (path.endsWith('/channels')) {
    return answer(200, { user: site.user, websocket_url: 'ws://127.0.0.1:1/connection/websocket', channels: site.channels, ...(site.minted ? { origin: site.minted } : {}) });
  }
  if (path.endsWith('/auth')) {
    if ((body.channels || []).length > 100 || (!body.connection && !(body.channels || []).length)) return answer(400, { error: 'instant: bad batch' });
    const out = { channels: body.channels.map((ch) => (site.refuse.has(ch)
      ? { channel: ch, status: 403 }
      : { channel: ch, ...site.sign(site.user ? site.user.id : '', site.subTTL) })) };
    if (body.connection) out.connection = site.sign(site.user ? site.user.id : '', site.connTTL);
    return answer(200, out);
  }
  if (path.endsWith('/presence')) {
    // Answered by hand (answerSnapshot): a snapshot may come late.
    if (!(body.channels || []).length || body.channels.length > 20) return answer(400, { error: 'instant: bad presence request' });
    const a = await new Promise((resolve) => snapshots.push(resolve));
    if (a.status) return answer(a.status, { error: 'instant: refused' });
    const clients = Object.values(a.clients || {}).map((ci) => ({ client: ci.client, user: ci.user, ...(ci.chanInfo !== undefined ? { info: ci.chanInfo } : {}) }));
    return answer(200, { channels: body.channels.map((ch) => ((a.refuse || []).includes(ch) ? { channel: ch, status: 403 } : { channel: ch, clients })) });
  }
  return answer(404, { error: 'not found' });
};

// ---- the stand-in for centrifuge-js 5 ------------------------------------

class Emitter {
  constructor() { this.handlers = {}; }
  on(name, fn) { (this.handlers[name] ||= []).push(fn); return this; }
  emit(name, ...args) { for (const fn of this.handlers[name] || []) fn(...args); }
  removeAllListeners() { this.handlers = {}; }
  listeners() { return Object.values(this.handlers).reduce((n, l) => n + l.length, 0); }
}
class UnauthorizedError extends Error {}

// Resolvers of the presence requests in flight, in order: each takes
// {clients: {id: {user, client, chanInfo}}} (every channel of the request
// gets them), with refuse: [channels answered 403], or {status}.
const snapshots = [];
const later = (fn) => setTimeout(fn, 1);

class StandInSubscription extends Emitter {
  constructor(client, channel, opts) {
    super();
    this.client = client;
    this.channel = channel;
    this.opts = opts;
    this.state = 'unsubscribed';
    this.token = '';
    this.flow = 0;
  }
  subscribe() {
    if (this.state !== 'unsubscribed') return;
    this._set('subscribing', 0, 'subscribe called');
    this._subscribe();
  }
  unsubscribe() {
    if (this.state === 'unsubscribed') return;
    this.flow++;
    this._set('unsubscribed', 0, 'unsubscribe called');
  }
  presence() { throw new Error('client.js asked Centrifugo for presence: the site answers it'); }
  _set(state, code, reason) { this.state = state; this.emit(state, { channel: this.channel, code, reason }); }
  async _subscribe() {
    if (this.client.state !== 'connected') return; // when the transport opens
    const flow = ++this.flow;
    let token = this.token;
    if (this.opts.getToken && !token) {
      try {
        token = await this.opts.getToken({ channel: this.channel });
      } catch (e) {
        if (flow !== this.flow || this.state !== 'subscribing') return;
        if (e instanceof UnauthorizedError) this._set('unsubscribed', 1, 'unauthorized');
        else later(() => this._retry(flow));
        return;
      }
      if (flow !== this.flow || this.state !== 'subscribing') return;
      this.token = token;
    }
    if (this.client.state !== 'connected') return;
    if (token && site.expired(token)) { // 109: the subscription asks again after a backoff
      this.token = '';
      later(() => this._retry(flow));
      return;
    }
    this.client.subscribedWith.push(this.channel + ' ' + token);
    this._set('subscribed', 0, '');
  }
  _retry(flow) { if (flow === this.flow && this.state === 'subscribing') this._subscribe(); }
}

const clients = [];
class StandInCentrifuge extends Emitter {
  constructor(url, opts) {
    super();
    this.opts = opts;
    this.subs = new Map();
    this.state = 'disconnected';
    this.token = '';
    this.refreshRequired = false;
    this.subscribedWith = []; // "channel token" of each subscribe the server took
    clients.push(this);
  }
  setToken(token) { this.token = token; }
  newSubscription(name, opts) {
    if (this.subs.has(name)) throw new Error('Subscription to the channel ' + name + ' already exists');
    const s = new StandInSubscription(this, name, opts || {});
    this.subs.set(name, s);
    return s;
  }
  removeSubscription(sub) {
    if (!sub) return;
    sub.unsubscribe();
    for (const [n, s] of this.subs) if (s === sub) this.subs.delete(n);
  }
  connect() {
    if (this.state !== 'disconnected') return;
    this._connecting(0, 'connect called');
  }
  disconnect() {
    if (this.state === 'disconnected') return;
    this.state = 'disconnected';
    this.attempt = (this.attempt || 0) + 1;
    for (const s of this.subs.values()) if (s.state === 'subscribed') s._set('subscribing', 1, 'transport closed');
    this.emit('disconnected', { code: 0, reason: 'disconnect called' });
  }
  // drop closes the transport as a Centrifugo restart would (code 1), or
  // the server does with a reconnect code (4001).
  drop(code = 1, reason = 'transport closed') {
    for (const s of this.subs.values()) if (s.state === 'subscribed') s._set('subscribing', 1, reason);
    this._connecting(code, reason);
  }
  _connecting(code, reason) {
    this.state = 'connecting';
    const attempt = this.attempt = (this.attempt || 0) + 1;
    this.emit('connecting', { code, reason });
    later(() => this._attempt(attempt));
  }
  async _attempt(attempt) {
    if (attempt !== this.attempt || this.state !== 'connecting') return;
    if (this.token === '' || this.refreshRequired) {
      try {
        this.token = await this.opts.getToken({});
      } catch (e) {
        if (attempt !== this.attempt) return;
        if (e instanceof UnauthorizedError) {
          this.state = 'disconnected';
          this.emit('disconnected', { code: 1, reason: 'unauthorized' });
        } else later(() => this._attempt(attempt));
        return;
      }
      if (attempt !== this.attempt || this.state !== 'connecting') return;
    }
    if (site.expired(this.token)) { // 109: the next attempt asks for a token
      this.refreshRequired = true;
      later(() => this._attempt(attempt));
      return;
    }
    this.refreshRequired = false;
    this.state = 'connected';
    for (const s of this.subs.values()) if (s.state === 'subscribing') s._subscribe(); // one loop
    this.emit('connected', { client: 'c' + attempt });
  }
}
StandInCentrifuge.UnauthorizedError = UnauthorizedError;

const settle = (ms = 30) => new Promise((r) => setTimeout(r, ms));
async function until(what, cond) {
  for (let k = 0; k < 200; k++) {
    if (cond()) return;
    await settle(5);
  }
  throw new Error('timed out waiting for ' + what);
}
const users = (live, ch = '$room') => live.members(ch).map((m) => m.user + ':' + m.clients).join(',');
const held = (live) => live.channels.map((c) => c.name + '/' + c.level).join(' ');
const allSubscribed = (live) => [...live.client.subs.values()].every((s) => s.state === 'subscribed');
const auths = () => site.calls.filter((c) => c.path.endsWith('/auth'));
const presences = () => site.calls.filter((c) => c.path.endsWith('/presence'));
const tokenCalls = () => site.calls.filter((c) => !c.path.endsWith('/presence'));
// answerSnapshot answers the oldest presence request, once it came.
async function answerSnapshot(a) {
  await until('a presence request', () => snapshots.length > 0);
  snapshots.shift()(a);
}

const { Instant } = await import(new URL('../client.js', import.meta.url));

async function started(options, channels) {
  site.reset(channels);
  snapshots.length = 0;
  const live = new Instant(StandInCentrifuge, options);
  await live.start();
  await until('the subscriptions', () => allSubscribed(live));
  return live;
}
const room = [{ name: '$room', level: 'users' }];

// 1. Pushes that arrive while the snapshot is asked for are replayed on it:
// bob (in the snapshot) left and carol joined before its reply came.
test('presence: pushes during the snapshot are replayed on it', async () => {
  const out = {};
  const live = await started({ presence: true }, room);
  const sub = live.client.subs.get('$room');
  sub.emit('leave', { info: { user: 'bob', client: 'b1' } });
  sub.emit('join', { info: { user: 'carol', client: 'c1' } });
  await answerSnapshot({ clients: { b1: { user: 'bob', client: 'b1' }, a1: { user: 'ann', client: 'a1' } } });
  await settle();
  out.snapshotRace = users(live);
  assert.deepStrictEqual(out, {
    snapshotRace: 'ann:1,carol:1',
  });
});

// 2. Two tabs of one user are one member until the last leaves; a leave of
// an unknown client changes nothing; anonymous subscribers are not members.
test('presence: the tabs of one user are one member', async () => {
  const out = {};
  site.reset(room);
  const live = new Instant(StandInCentrifuge, { presence: true });
  const leaving = [];
  live.leaving('$room', (m) => leaving.push(m.user));
  snapshots.length = 0;
  await live.start();
  await until('the subscription', () => allSubscribed(live));
  const sub = live.client.subs.get('$room');
  await answerSnapshot({ clients: { a1: { user: 'ann', client: 'a1' }, a2: { user: 'ann', client: 'a2' }, x: { user: '', client: 'x' } } });
  await settle();
  const steps = [users(live)];
  sub.emit('leave', { info: { user: 'ann', client: 'zz' } });
  steps.push(users(live));
  sub.emit('leave', { info: { user: 'ann', client: 'a1' } });
  steps.push(users(live));
  sub.emit('leave', { info: { user: 'ann', client: 'a2' } });
  steps.push(users(live));
  out.tabs = steps.join('|');
  out.leaving = leaving.join(',');
  assert.deepStrictEqual(out, {
    tabs: 'ann:2|ann:2|ann:1|',
    leaving: 'ann',
  });
});

// 3. A snapshot that comes back after the channel was refused is ignored.
test('presence: a snapshot after the channel was refused is ignored', async () => {
  const out = {};
  const live = await started({ presence: true }, room);
  live._deny('$room', live.client.subs.get('$room'));
  await answerSnapshot({ clients: { a1: { user: 'ann', client: 'a1' } } });
  await settle();
  out.afterDeny = users(live);
  assert.deepStrictEqual(out, {
    afterDeny: '',
  });
});

// 3b. A snapshot asked for by a subscription that was refused and then
// replaced (the channel granted again) is not the new one's members.
test('presence: the snapshot of a replaced subscription is ignored', async () => {
  const out = {};
  const live = await started({ presence: true }, room);
  await until('the first snapshot request', () => snapshots.length === 1);
  live._deny('$room', live.client.subs.get('$room'));
  live._apply({ user: site.user, channels: room }, Date.now());
  await until('the new subscription', () => allSubscribed(live) && snapshots.length === 2);
  snapshots.shift()({ clients: { a1: { user: 'ann', client: 'a1' } } });
  await settle();
  out.staleSnapshot = users(live);
  assert.deepStrictEqual(out, {
    staleSnapshot: '',
  });
});

// 4. Events: a repeat of an id on the same channel is dropped, this tab's
// own origin is dropped and counted.
test("events: a repeated id and this tab's own are dropped", async () => {
  const out = {};
  const live = await started({}, room);
  const got = [];
  live.on('event', (ev, ch) => got.push(ch + ' ' + ev.message));
  const sub = live.client.subs.get('$room');
  sub.emit('publication', { data: { id: 'e1', message: 'one' } });
  sub.emit('publication', { data: { id: 'e1', message: 'one again' } });
  sub.emit('publication', { data: { id: 'e2', message: 'mine', origin: live.origin } });
  sub.emit('publication', { data: { id: 'e3', message: 'theirs', origin: 'another-tab' } });
  out.events = got.join(',');
  out.droppedOwn = live.droppedOwn;
  assert.deepStrictEqual(out, {
    events: '$room one,$room theirs',
    droppedOwn: 1,
  });
});

// 5. A batch of 1,500 events sent again whole (a retried BroadcastBatch):
// every copy is dropped.
test('events: a batch sent again is dropped whole', async () => {
  const out = {};
  const live = await started({}, room);
  let got = 0;
  live.on('event', () => got++);
  const sub = live.client.subs.get('$room');
  for (let round = 0; round < 2; round++) {
    for (let k = 0; k < 1500; k++) sub.emit('publication', { data: { id: 'b' + k, message: 'm' } });
  }
  out.batchDelivered = got;
  assert.deepStrictEqual(out, {
    batchDelivered: 1500,
  });
});

// 6. What a page with 4 private channels costs the site: two listed, two
// of its own (rule channels, subscribed to before start), and a public one.
const listed = [
  { name: 'site_public', level: 'public' },
  { name: '$site_users', level: 'users' },
  { name: '$site_user:1', level: 'personal' },
];
test('tokens: a page with four private channels asks once each time', async () => {
  const out = {};
  site.reset(listed);
  snapshots.length = 0;
  const live = new Instant(StandInCentrifuge, { presence: true });
  live.subscribe('$project-7').subscribe('$project-8');
  const events = [];
  live.on('event', (ev, ch) => events.push(ch + ' ' + ev.message));
  await live.start();
  await until('the subscriptions', () => live.client.subs.size === 5 && allSubscribed(live));
  const first = auths();
  out.connectRequests = site.count('/instant/channels') + ' channels, ' + first.length + ' auth';
  out.connectAsked = first.map((c) => (c.body.connection ? 'connection+' : '') + c.body.channels.slice().sort().join('+')).join(' | ');
  out.held = held(live);
  // The four private channels' members: ONE request to the site.
  await until('the presence request', () => presences().length > 0);
  await settle();
  out.presenceAsked = presences().map((c) => c.body.channels.slice().sort().join('+')).join(' | ');

  // Centrifugo restarts: every token is still valid.
  site.calls = [];
  live.client.drop();
  await until('the reconnect', () => live.state === 'connected' && allSubscribed(live));
  await until('the presence request', () => presences().length > 0);
  await settle();
  out.reconnectValid = tokenCalls().length;
  // The members are asked for again (the joins and leaves of the outage
  // are lost), in one request.
  out.reconnectPresence = presences().length;

  // Down longer than the tokens live: they all expired.
  elapsed += 11 * 60 * 1000;
  site.calls = [];
  const before = live.client.subscribedWith.length;
  live.client.drop();
  await until('the reconnect after expiry', () => live.state === 'connected' && allSubscribed(live) && live.client.subscribedWith.length >= before + 4);
  await settle();
  out.reconnectExpired = tokenCalls().length;
  out.reconnectExpiredAsked = auths().map((c) => (c.body.connection ? 'connection+' : '') + c.body.channels.length).join(' | ');

  // The subscription tokens end together (5 min): each subscription asks
  // for a new one when its own timer fires, in tasks of their own.
  elapsed += 5 * 60 * 1000;
  site.calls = [];
  const subs = [...live.client.subs.values()].filter((s) => s.opts.getToken);
  const renewed = await Promise.all(subs.map((s) => new Promise((r) => setTimeout(() => r(s.opts.getToken({ channel: s.channel })), 0))));
  out.renewRequests = tokenCalls().length;
  out.renewedDistinct = new Set(renewed).size === subs.length && renewed.every((t) => !site.expired(t));

  // The rule channel's events and presence, like a listed channel's.
  const p7 = live.client.subs.get('$project-7');
  p7.emit('publication', { data: { id: 'p1', message: 'project news' } });
  p7.emit('publication', { data: { id: 'p1', message: 'project news again' } });
  p7.emit('publication', { data: { id: 'p2', message: 'mine', origin: live.origin } });
  out.ruleEvents = events.join(',');
  const seen = [];
  // The README's presence example, as written.
  live.here('$project-7', (members) => seen.push('here ' + members.map((m) => m.info.name ?? m.user).join(',')));
  const infos = [];
  live.joining('$project-7', (m) => seen.push('joining ' + (m.info.name ?? m.user)));
  live.joining('$project-7', (m) => infos.push(JSON.stringify(m.info)));
  live.leaving('$project-7', (m) => seen.push('leaving ' + (m.info.name ?? m.user)));
  await until('the snapshot requests', () => snapshots.length > 0);
  while (snapshots.length) snapshots.shift()({ clients: { a1: { user: '1', client: 'a1', chanInfo: { name: 'Ann' } } } });
  await settle();
  p7.emit('join', { info: { user: '2', client: 'b1' } }); // no info at all
  p7.emit('leave', { info: { user: '2', client: 'b1' } });
  out.rulePresence = seen.join('; ');
  out.infoWhenNone = infos.join(',');
  live.stop();
  assert.deepStrictEqual(out, {
    connectRequests: '1 channels, 1 auth',
    connectAsked: 'connection+$project-7+$project-8+$site_user:1+$site_users',
    held: 'site_public/public $site_users/users $site_user:1/personal $project-7/rule $project-8/rule',
    presenceAsked: '$project-7+$project-8+$site_user:1+$site_users',
    reconnectValid: 0,
    reconnectPresence: 1,
    reconnectExpired: 1,
    reconnectExpiredAsked: 'connection+4',
    renewRequests: 1,
    renewedDistinct: true,
    ruleEvents: '$project-7 project news',
    rulePresence: 'here Ann; joining 2; here Ann,2; leaving 2; here Ann',
    infoWhenNone: '{}',
  });
});

// 7. A channel the site refuses moves to denied; one subscribed to while
// connected costs one request for all subscribed in the same tick.
test('tokens: a refused channel is denied; subscribes of one tick share a request', async () => {
  const out = {};
  site.reset(listed);
  site.refuse.add('$project-9');
  const live = new Instant(StandInCentrifuge, {});
  live.subscribe('$project-9');
  await live.start();
  await until('the refusal', () => live.denied.includes('$project-9'));
  await until('the subscriptions', () => allSubscribed(live));
  await settle();
  out.refused = held(live) + ' | denied ' + live.denied.join(' ');
  out.refusedNoRefresh = site.count('/instant/channels'); // refused at once: nothing else to ask
  out.refusedRequests = auths().length; // the refusal came with the other tokens
  site.calls = [];
  live.subscribe('$project-10').subscribe('$project-11');
  await until('the new subscriptions', () => live.client.subs.size === 5 && allSubscribed(live));
  out.subscribeLater = auths().length + ' auth for ' + auths().map((c) => c.body.channels.join('+')).join(' | ');
  let threw = '';
  try { live.subscribe('bad name'); } catch (e) { threw = e.constructor.name; }
  out.badName = threw;
  live.stop();
  assert.deepStrictEqual(out, {
    refused: 'site_public/public $site_users/users $site_user:1/personal | denied $project-9',
    refusedNoRefresh: 1,
    refusedRequests: 1,
    subscribeLater: '1 auth for $project-10+$project-11',
    badName: 'TypeError',
  });
});

// 8. refresh(): the page's own channels are kept while the site grants
// their tokens, dropped when it refuses them; a channel the page
// unsubscribed from stays away; a refused listed channel asks the site again.
test("refresh keeps, drops and takes back the page's channels", async () => {
  const out = {};
  site.reset(listed);
  const live = new Instant(StandInCentrifuge, {});
  live.subscribe('$project-7').subscribe('$project-8');
  await live.start();
  await until('the subscriptions', () => live.client.subs.size === 5 && allSubscribed(live));
  live.unsubscribe('$site_user:1');
  site.refuse.add('$project-8');
  site.calls = [];
  await live.refresh();
  await settle();
  out.refreshCalls = site.calls.map((c) => c.path.replace('/instant/', '') + (c.body ? ' ' + c.body.channels.join('+') : '')).join(' | ');
  out.afterRefresh = held(live) + ' | denied ' + live.denied.join(' ');
  // Granted again: the next refresh brings it back.
  site.refuse.delete('$project-8');
  await live.refresh();
  await until('the channel back', () => live.client.subs.has('$project-8') && allSubscribed(live));
  out.grantedAgain = held(live) + ' | denied ' + live.denied.join(' ');
  live.stop();
  assert.deepStrictEqual(out, {
    refreshCalls: 'channels | auth $project-7+$project-8',
    afterRefresh: 'site_public/public $site_users/users $project-7/rule | denied $project-8',
    grantedAgain: 'site_public/public $site_users/users $project-7/rule $project-8/rule | denied ',
  });
});

// 9. start() after stop(): the old client keeps no subscription or handler,
// the new one holds every channel, the page's own included, and the
// tokens still valid are used again.
test('start after stop', async () => {
  const out = {};
  site.reset(listed);
  const live = new Instant(StandInCentrifuge, {});
  live.subscribe('$project-7');
  const events = [];
  const states = [];
  live.on('event', (ev, ch) => events.push(ch + ' ' + ev.message));
  live.on('state', (s) => states.push(s));
  await live.start();
  await until('the subscriptions', () => live.client.subs.size === 4 && allSubscribed(live));
  const old = live.client;
  const oldSub = old.subs.get('$project-7');
  live.stop();
  out.stopped = [live.state, live.client === null, old.state, old.subs.size, old.listeners(), oldSub.listeners(), held(live)].join(' ');
  site.calls = [];
  await live.start();
  await until('the subscriptions again', () => live.client.subs.size === 4 && allSubscribed(live));
  out.restarted = [live.client !== old, held(live)].join(' ');
  out.restartRequests = site.calls.map((c) => c.path.replace('/instant/', '')).join(' ') || 'none beyond';
  oldSub.emit('publication', { data: { id: 'x1', message: 'from the old client' } });
  live.client.subs.get('$project-7').emit('publication', { data: { id: 'x2', message: 'from the new one' } });
  out.restartEvents = events.join(',');
  out.restartStates = states.join(' ');
  const made = clients.length;
  await Promise.all([live.start(), live.start()]); // started: nothing happens
  out.startTwice = clients.length - made;
  live.stop();
  await Promise.all([live.start(), live.start()]); // one client for both
  out.startTogether = clients.length - made;
  live.stop();
  assert.deepStrictEqual(out, {
    stopped: 'disconnected true disconnected 0 0 0 ',
    restarted: 'true site_public/public $site_users/users $site_user:1/personal $project-7/rule',
    restartRequests: 'channels',
    restartEvents: '$project-7 from the new one',
    restartStates: 'connecting connected disconnected connecting connected',
    startTwice: 0,
    startTogether: 1,
  });
});

// 10. The page's clock is an hour ahead of the site's: tokens are still
// reused, by their lifetime on the site's clock.
test("clock skew: tokens live by the site's clock", async () => {
  const out = {};
  pageSkew = 3600 * 1000;
  site.reset(listed);
  const live = new Instant(StandInCentrifuge, {});
  live.subscribe('$project-7').subscribe('$project-8');
  await live.start();
  await until('the subscriptions', () => live.client.subs.size === 5 && allSubscribed(live));
  const connect = auths().length;
  site.calls = [];
  live.client.drop();
  await until('the reconnect', () => live.state === 'connected' && allSubscribed(live));
  out.skewedAhead = connect + ' then ' + site.calls.length;
  live.stop();
  pageSkew = -3600 * 1000; // an hour behind: expired tokens are not offered
  site.reset(listed);
  const late = new Instant(StandInCentrifuge, {});
  await late.start();
  await until('the subscriptions', () => allSubscribed(late));
  elapsed += 11 * 60 * 1000;
  site.calls = [];
  const before = late.client.subscribedWith.length;
  late.client.drop();
  await until('the reconnect', () => late.state === 'connected' && allSubscribed(late) && late.client.subscribedWith.length >= before + 2);
  await settle();
  out.skewedBehind = site.calls.length;
  late.stop();
  pageSkew = 0;
  assert.deepStrictEqual(out, {
    skewedAhead: '1 then 0',
    skewedBehind: 1,
  });
});

// 11. The server closes the connection with a reconnect code (a logout
// elsewhere): the site is asked again, the connection comes back with a
// new token, the private channels the visitor lost are denied, and the
// page's own channel the site still grants is subscribed anew, for the
// new visitor.
test('a logout elsewhere: the page carries on as the new visitor', async () => {
  const out = {};
  site.reset(listed);
  const live = new Instant(StandInCentrifuge, {});
  live.subscribe('$project-7');
  await live.start();
  await until('the subscriptions', () => live.client.subs.size === 4 && allSubscribed(live));
  const before = live.client.subs.get('$project-7');
  site.user = null;
  site.channels = [{ name: 'site_public', level: 'public' }];
  site.calls = [];
  live.client.drop(4001, 'logout');
  await until('the page to carry on anonymous', () => live.state === 'connected' && live.denied.length === 2 && allSubscribed(live) && live.client.subs.get('$project-7') !== before);
  await settle();
  out.loggedOut = held(live) + ' | denied ' + live.denied.join(' ') + ' | user ' + live.user;
  out.loggedOutRequests = site.calls.map((c) => c.path.replace('/instant/', '') + (c.body ? (c.body.connection ? ' connection+' : ' ') + c.body.channels.join('+') : '')).join(' | ');
  out.loggedOutTokens = live.client.subscribedWith.filter((s) => s.startsWith('$project-7')).map((s) => s.split(':').pop() || 'anonymous').join(' ');
  live.stop();
  assert.deepStrictEqual(out, {
    loggedOut: 'site_public/public $project-7/rule | denied $site_users $site_user:1 | user null',
    loggedOutRequests: 'channels | auth connection+$project-7',
    loggedOutTokens: '1 anonymous',
  });
});

// 12. 150 channels: at most 100 a request, the connection in the first.
test('at most 100 channels a request', async () => {
  const out = {};
  site.reset([]);
  const live = new Instant(StandInCentrifuge, {});
  for (let k = 0; k < 150; k++) live.subscribe('$project-' + k);
  await live.start();
  await until('150 subscriptions', () => live.client.subs.size === 150 && allSubscribed(live));
  out.split = auths().map((c) => (c.body.connection ? 'connection+' : '') + c.body.channels.length).sort().join(' | ');
  live.stop();
  assert.deepStrictEqual(out, {
    split: '50 | connection+100',
  });
});

// 13. The origin: the one the site minted, sent on the app's requests; a
// newer one after a refresh (a login) replaces it, and events carrying
// either are this tab's. Without one from the site, a random id.
test('the origin', async () => {
  const out = {};
  site.reset([{ name: '$room', level: 'users' }]);
  const plain = new Instant(StandInCentrifuge, {});
  await plain.start();
  const randomOrigin = /^[0-9a-f]{24}$/.test(plain.origin);
  plain.stop();
  site.minted = 'minted-for-user-1';
  const live = new Instant(StandInCentrifuge, {});
  let got = 0;
  live.on('event', () => got++);
  await live.start();
  await until('the subscription', () => live.client.subs.size === 1 && allSubscribed(live));
  const first = live.origin;
  const header = live.headers({ 'X-Other': '1' }).get('X-Instant-Origin');
  site.minted = 'minted-after-login';
  await live.refresh();
  const sub = live.client.subs.get('$room');
  sub.emit('publication', { data: { id: 'o1', message: 'before', origin: first } });
  sub.emit('publication', { data: { id: 'o2', message: 'after', origin: 'minted-after-login' } });
  sub.emit('publication', { data: { id: 'o3', message: 'other', origin: 'minted-for-someone-else' } });
  out.origin = [randomOrigin, first, header, live.origin, got, live.droppedOwn].join(',');
  live.stop();
  assert.deepStrictEqual(out, {
    origin: 'true,minted-for-user-1,minted-for-user-1,minted-after-login,1,2',
  });
});

// 14. Snapshots the site refuses: a channel answered 403 (a public one,
// one the visitor may not read, or any for an anonymous visitor) gets no
// members and an 'error'; a request refused whole (503: Centrifugo refused
// it) an 'error' for each channel. 25 channels: at most 20 a request.
test('presence the site refuses', async () => {
  const out = {};
  site.reset([{ name: '$a', level: 'users' }, { name: '$b', level: 'users' }]);
  snapshots.length = 0;
  const live = new Instant(StandInCentrifuge, { presence: true });
  const errors = [];
  live.on('error', (e) => errors.push(e.message));
  await live.start();
  await until('the subscriptions', () => allSubscribed(live));
  await answerSnapshot({ clients: { a1: { user: 'ann', client: 'a1' } }, refuse: ['$b'] });
  await settle();
  out.presenceRefused = [users(live, '$a'), users(live, '$b') || 'none', errors.length, errors.some((m) => m.includes('403') && m.includes('$b'))].join(' ');
  errors.length = 0;
  live.client.drop();
  await until('the reconnect', () => live.state === 'connected' && allSubscribed(live));
  await answerSnapshot({ status: 503 });
  await settle();
  out.presenceFailed = errors.length + ' ' + errors.every((m) => m.includes('503'));
  live.stop();

  site.reset([]);
  snapshots.length = 0;
  const many = new Instant(StandInCentrifuge, { presence: true });
  for (let k = 0; k < 25; k++) many.subscribe('$p-' + k);
  await many.start();
  await until('25 subscriptions', () => many.client.subs.size === 25 && allSubscribed(many));
  await until('the presence requests', () => presences().length === 2);
  out.presenceSplit = presences().map((c) => c.body.channels.length).sort((a, b) => b - a).join(' | ');
  while (snapshots.length) snapshots.shift()({ clients: {} });
  many.stop();
  assert.deepStrictEqual(out, {
    presenceRefused: 'ann:1 none 1 true',
    presenceFailed: '2 true',
    presenceSplit: '20 | 5',
  });
});

// 15. Refusals of the server's are told, with its code and reason: the
// connection closed for good (3500: another token secret), a subscription
// refused (102 unknown channel: a namespace the config lacks; 103; an
// unsubscribe of the server's), which moves the channel to denied whatever
// refused it, public or private, listed or the page's own; a refusal
// centrifuge-js retries is told and the channel kept. An expired token
// (109, renewed), a disconnect the page asked for (0), the site's refusal
// (denied, as before) are no error.
test("the server's refusals are told", async () => {
  const out = {};
  class RefusedCentrifuge extends StandInCentrifuge {
    async _attempt() { // Centrifugo closes the connection: 3500, no reconnect
      this.state = 'disconnected';
      this.emit('disconnected', { code: 3500, reason: 'invalid token' });
    }
  }
  RefusedCentrifuge.UnauthorizedError = UnauthorizedError;
  site.reset([{ name: 'site_public', level: 'public' }]);
  const refused = new Instant(RefusedCentrifuge, {});
  const errors = [];
  const states = [];
  refused.on('error', (e) => errors.push(e));
  refused.on('state', (state, reason) => states.push(state + (reason ? ' (' + reason + ')' : '')));
  await refused.start();
  await until('the refusal', () => errors.length > 0);
  out.connectionRefused = errors.map((e) => e.code + ' ' + e.reason + ' ' + (e.channel ?? 'no channel')).join(', ') + ' | ' + states.join(' ');
  out.connectionRefusedSays = errors[0].message.includes('TokenSecret');
  refused.stop();

  const live = await started({}, [{ name: 'site_public', level: 'public' }, { name: '$site_users', level: 'users' }, { name: '$site_staff', level: 'staff' }]);
  live.subscribe('$ghost:1').subscribe('news:all').subscribe('$project-7');
  await until('the own channels', () => live.client.subs.size === 6 && allSubscribed(live));
  const told = [];
  live.on('error', (e) => told.push(e.channel + ' ' + e.code + ' ' + e.reason));
  const sub = (name) => live.client.subs.get(name);
  sub('$ghost:1')._set('unsubscribed', 102, 'unknown channel');
  sub('news:all')._set('unsubscribed', 102, 'unknown channel');
  sub('$site_staff')._set('unsubscribed', 103, 'permission denied');
  sub('$project-7')._set('unsubscribed', 2000, 'server unsubscribe');
  // Retried by centrifuge-js: told, kept.
  sub('$site_users').emit('error', { type: 'subscribe', channel: '$site_users', error: { code: 100, message: 'internal server error', temporary: true } });
  // No error: a token renewed, a disconnect the page asked for.
  sub('$site_users').emit('error', { type: 'subscribe', channel: '$site_users', error: { code: 109, message: 'token expired' } });
  live.client.emit('error', { type: 'connect', error: { code: 109, message: 'token expired' } });
  live.client.emit('error', { type: 'transport', error: { code: 2, message: 'transport closed' } });
  live.client.emit('error', { type: 'connect', error: { code: 111, message: 'too many requests', temporary: true } });
  await settle();
  out.refusedTold = told.join(', ');
  out.refusedDenied = held(live) + ' | denied ' + [...live.denied].sort().join(' ');
  live.stop();
  out.stopTold = told.length;
  assert.deepStrictEqual(out, {
    connectionRefused: '3500 invalid token no channel | connecting disconnected (invalid token)',
    connectionRefusedSays: true,
    refusedTold: '$ghost:1 102 unknown channel, news:all 102 unknown channel, $site_staff 103 permission denied, $project-7 2000 server unsubscribe, $site_users 100 internal server error, undefined 111 too many requests',
    refusedDenied: 'site_public/public $site_users/users | denied $ghost:1 $project-7 $site_staff news:all',
    stopTold: 6,
  });
});

// 16. The README's examples, as written (readme_test.go checks that each
// README block is here or in a compiled file). Their console.log lines are
// collected, not printed.
test("the README's examples run as written", async () => {
  const out = {};
  site.reset([
    { name: 'site_public', level: 'public' },
    { name: '$site_users', level: 'users' },
  ]);
  const Centrifuge = StandInCentrifuge;
  const logged = [];
  const console = { log: (...args) => logged.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')) };
  console.warn = console.log;
  {
const live = new Instant(Centrifuge, { presence: ['$site_users'] });
live.on('event', (ev, channel) => console.log(channel, ev.message, ev.data));
await live.start();
    await until('the intro page', () => allSubscribed(live));
    live.client.subs.get('$site_users').emit('publication', { data: { id: 'r1', message: 'hello', data: { n: 1 } } });
    live.stop();
  }
  {
const live = new Instant(Centrifuge, { base: '/instant', presence: ['$site_users', '$project-7'] });
live.on('event', (ev, channel) => console.log(channel, ev.message, ev.data));
live.on('state', (state, reason) => console.log('connection', state, reason)); // 'connecting' | 'connected' | 'disconnected', and why
live.on('error', (e) => console.warn(e.message)); // e.code and e.reason as Centrifugo gave them, e.channel when it is a channel's
live.on('channels', (channels, denied) => console.log(channels.map((c) => c.name), denied));
live.here('$site_users', (members) => console.log(members.map((m) => m.info.name ?? m.user)));
live.joining('$site_users', (m) => console.log(m.info.name ?? m.user, 'arrived'));
live.leaving('$site_users', (m) => console.log(m.info.name ?? m.user, 'left'));
live.subscribe('$project-7'); // any channel the site allows, a rule's included
await live.start();
    await until('the README page', () => live.client.subs.size === 3 && allSubscribed(live));
    live.client.subs.get('$site_users').emit('join', { info: { user: '2', client: 'b1' } });
    live.client.subs.get('$project-7').emit('publication', { data: { id: 'r2', message: 'project news' } });
    live.client.subs.get('$project-7')._set('unsubscribed', 102, 'unknown channel'); // a config without its namespace
    live.stop();
  }
  const has = (line) => logged.includes(line);
  out.readme = [has('$site_users hello {"n":1}'), has('["site_public","$site_users","$project-7"] []'), has('2 arrived'), has('$project-7 project news '), logged.some((l) => l.startsWith('connection connected')),
    logged.some((l) => l.startsWith('instant: centrifugo refused $project-7: 102 unknown channel (a namespace')), has('["site_public","$site_users"] ["$project-7"]'), has('connection disconnected stop called')].join(',');
  assert.deepStrictEqual(out, {
    readme: 'true,true,true,true,true,true,true,true',
  });
});


// 17. "To others":
// every subscription asks Centrifugo for the publications whose "origin"
// tag is none of this tab's ids; where Centrifugo refuses a filter (107: a
// namespace without allow_tags_filter), the subscription is made again
// without one, the page sees no refusal and the site is not asked again,
// and the namespace's next channels go without a filter at once. A new
// origin is in the filter from the next subscribe on.
test('to others: the tags filter, and its fallback where a namespace refuses it', async () => {
  const out = {};
  const refusing = new Set(['']); // namespaces without allow_tags_filter
  const log = [];
  class FilteredSubscription extends StandInSubscription {
    setTagsFilter(f) { this.opts = { ...this.opts, tagsFilter: f }; }
    _subscribe() {
      const f = this.opts.tagsFilter;
      if (this.client.state === 'connected') {
        const ns = this.channel.replace(/^\$/, '').split(':');
        const vals = f ? f.vals.filter((v) => !/^[0-9a-f]{24}$/.test(v)).join('+') : '';
        log.push(this.channel + ' ' + (f ? f.key + ' ' + f.cmp + ' ' + vals : 'none'));
        if (f && refusing.has(ns.length > 1 ? ns[0] : '')) {
          this.flow++;
          this._set('unsubscribed', 107, 'bad request');
          return;
        }
      }
      return super._subscribe();
    }
  }
  class FilteringCentrifuge extends StandInCentrifuge {
    newSubscription(name, opts) {
      const s = new FilteredSubscription(this, name, opts || {});
      this.subs.set(name, s);
      return s;
    }
  }
  FilteringCentrifuge.UnauthorizedError = UnauthorizedError;
  site.reset([{ name: 'site_public', level: 'public' }, { name: '$room', level: 'users' }]);
  site.minted = 'origin-1';
  const live = new Instant(FilteringCentrifuge, {});
  const states = [];
  live.on('subscription', (ch, state, reason) => states.push(ch + ' ' + state + (reason ? ' (' + reason + ')' : '')));
  live.subscribe('$team:1');
  await live.start();
  await until('the subscriptions', () => live.client.subs.size === 3 && allSubscribed(live));
  out.start = log.splice(0).sort().join(' | ');
  out.states = states.filter((s) => !s.includes('subscribing')).sort().join(' | ');
  out.refusals = states.filter((s) => s.includes('unsubscribed')).length;
  out.requests = site.count('/instant/channels') + ' channels, ' + auths().length + ' auth';
  // Another channel without a namespace: no filter from the start.
  live.subscribe('$room2');
  await until('$room2', () => live.client.subs.size === 4 && allSubscribed(live));
  out.later = log.splice(0).join(' | ');
  // A new origin (a login): in the filter of the next subscribe.
  site.minted = 'origin-2';
  await live.refresh();
  live.client.drop();
  await until('back', () => live.client.state === 'connected' && allSubscribed(live));
  out.resubscribed = log.splice(0).sort().join(' | ');
  out.origins = live.origin;
  live.stop();
  assert.deepStrictEqual(out, {
    start: '$room none | $room origin nin origin-1 | $team:1 origin nin origin-1 | site_public none | site_public origin nin origin-1',
    states: '$room subscribed | $team:1 subscribed | site_public subscribed',
    refusals: 0,
    requests: '1 channels, 1 auth',
    later: '$room2 none',
    resubscribed: '$room none | $room2 none | $team:1 origin nin origin-1+origin-2 | site_public none',
    origins: 'origin-2',
  });
});

