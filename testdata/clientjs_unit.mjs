// Unit checks of client.js's own logic (presence bookkeeping, dropping
// repeats and this tab's own events) against a stand-in for centrifuge-js
// that the script drives by hand. The browser tests in example_app run
// client.js against a real Centrifugo; this one times pushes and replies
// in orders a live server rarely shows. Prints one JSON object of results.
// Usage: node clientjs_unit.mjs /abs/path/client.js

class Emitter {
  constructor() { this.handlers = {}; }
  on(name, fn) { (this.handlers[name] ||= []).push(fn); return this; }
  emit(name, ...args) { for (const fn of this.handlers[name] || []) fn(...args); }
}

const snapshots = []; // resolvers of presence calls in flight, in order
class StandInSubscription extends Emitter {
  subscribe() {}
  presence() { return new Promise((resolve) => snapshots.push(resolve)); }
}
class StandInCentrifuge extends Emitter {
  constructor() { super(); this.subs = new Map(); }
  newSubscription(name) { const s = new StandInSubscription(); this.subs.set(name, s); return s; }
  removeSubscription(sub) { for (const [n, s] of this.subs) if (s === sub) this.subs.delete(n); }
  connect() {}
  disconnect() {}
}
StandInCentrifuge.UnauthorizedError = class extends Error {};

let minted = null; // the origin GET channels answers (none: an older site)
globalThis.fetch = async () => ({
  ok: true, status: 200,
  json: async () => ({ user: { id: '1' }, websocket_url: 'ws://127.0.0.1:1/connection/websocket', channels: [{ name: '$room', level: 'users' }], ...(minted ? { origin: minted } : {}) }),
});

const settle = () => new Promise((r) => setTimeout(r, 5));
const users = (live) => live.members('$room').map((m) => m.user + ':' + m.clients).join(',');

const { Instant } = await import(process.argv[2]);
const out = {};

// 1. Pushes that arrive while the snapshot is asked for are replayed on it:
// bob (in the snapshot) left and carol joined before its reply came.
{
  const live = new Instant(StandInCentrifuge, { presence: true });
  await live.start();
  const sub = live.client.subs.get('$room');
  sub.emit('subscribed', {});
  sub.emit('leave', { info: { user: 'bob', client: 'b1' } });
  sub.emit('join', { info: { user: 'carol', client: 'c1' } });
  snapshots.shift()({ clients: { b1: { user: 'bob', client: 'b1' }, a1: { user: 'ann', client: 'a1' } } });
  await settle();
  out.snapshotRace = users(live);
}

// 2. Two tabs of one user are one member until the last leaves; a leave of
// an unknown client changes nothing; anonymous subscribers are not members.
{
  const live = new Instant(StandInCentrifuge, { presence: true });
  const leaving = [];
  live.leaving('$room', (m) => leaving.push(m.user));
  await live.start();
  const sub = live.client.subs.get('$room');
  sub.emit('subscribed', {});
  snapshots.shift()({ clients: { a1: { user: 'ann', client: 'a1' }, a2: { user: 'ann', client: 'a2' }, x: { user: '', client: 'x' } } });
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
}

// 3. A snapshot that comes back after the channel was refused is ignored.
{
  const live = new Instant(StandInCentrifuge, { presence: true });
  await live.start();
  const sub = live.client.subs.get('$room');
  sub.emit('subscribed', {});
  live._deny('$room', sub);
  snapshots.shift()({ clients: { a1: { user: 'ann', client: 'a1' } } });
  await settle();
  out.afterDeny = users(live);
}

// 3b. A snapshot asked for by a subscription that was refused and then
// replaced (the channel granted again) is not the new one's members.
{
  const live = new Instant(StandInCentrifuge, { presence: true });
  await live.start();
  const first = live.client.subs.get('$room');
  first.emit('subscribed', {});
  live._deny('$room', first);
  live._apply({ channels: [{ name: '$room', level: 'users' }] });
  snapshots.shift()({ clients: { a1: { user: 'ann', client: 'a1' } } });
  await settle();
  out.staleSnapshot = users(live);
}

// 4. Events: a repeat of an id on the same channel is dropped, this tab's
// own origin is dropped and counted.
{
  const live = new Instant(StandInCentrifuge, {});
  const got = [];
  live.on('event', (ev, ch) => got.push(ch + ' ' + ev.message));
  await live.start();
  const sub = live.client.subs.get('$room');
  sub.emit('publication', { data: { id: 'e1', message: 'one' } });
  sub.emit('publication', { data: { id: 'e1', message: 'one again' } });
  sub.emit('publication', { data: { id: 'e2', message: 'mine', origin: live.origin } });
  sub.emit('publication', { data: { id: 'e3', message: 'theirs', origin: 'another-tab' } });
  out.events = got.join(',');
  out.droppedOwn = live.droppedOwn;
}

// 5. A batch of 1,500 events sent again whole (a retried BroadcastBatch):
// every copy is dropped.
{
  const live = new Instant(StandInCentrifuge, {});
  let got = 0;
  live.on('event', () => got++);
  await live.start();
  const sub = live.client.subs.get('$room');
  for (let round = 0; round < 2; round++) {
    for (let k = 0; k < 1500; k++) sub.emit('publication', { data: { id: 'b' + k, message: 'm' } });
  }
  out.batchDelivered = got;
}

// 6. The origin: the one the site minted, sent on the app's requests; a
// newer one after a refresh (a login) replaces it, and events carrying
// either are this tab's. Without one from the site, a random id.
{
  const plain = new Instant(StandInCentrifuge, {});
  await plain.start();
  const randomOrigin = /^[0-9a-f]{24}$/.test(plain.origin);
  minted = 'minted-for-user-1';
  const live = new Instant(StandInCentrifuge, {});
  let got = 0;
  live.on('event', () => got++);
  await live.start();
  const first = live.origin;
  const header = live.headers({ 'X-Other': '1' }).get('X-Instant-Origin');
  minted = 'minted-after-login';
  await live.refresh();
  const sub = live.client.subs.get('$room');
  sub.emit('publication', { data: { id: 'o1', message: 'before', origin: first } });
  sub.emit('publication', { data: { id: 'o2', message: 'after', origin: 'minted-after-login' } });
  sub.emit('publication', { data: { id: 'o3', message: 'other', origin: 'minted-for-someone-else' } });
  out.origin = [randomOrigin, first, header, live.origin, got, live.droppedOwn].join(',');
  minted = null;
}

console.log(JSON.stringify(out));
