// Checks of client.js's answer to Reauthorize's push (event_class
// "instant.reauthorized" on the user's personal channel), against a
// stand-in for centrifuge-js and a stand-in site whose channel list
// changes. Prints one JSON object of results.
// Usage: node clientjs_reauth.mjs /abs/path/client.js

class Emitter {
  constructor() { this.handlers = {}; }
  on(name, fn) { (this.handlers[name] ||= []).push(fn); return this; }
  emit(name, ...args) { for (const fn of this.handlers[name] || []) fn(...args); }
}
class StandInSubscription extends Emitter { subscribe() {} presence() { return new Promise(() => {}); } }
class StandInCentrifuge extends Emitter {
  constructor() { super(); this.subs = new Map(); }
  newSubscription(name) { const s = new StandInSubscription(); this.subs.set(name, s); return s; }
  removeSubscription(sub) { for (const [n, s] of this.subs) if (s === sub) this.subs.delete(n); }
  connect() {}
  disconnect() {}
}
StandInCentrifuge.UnauthorizedError = class extends Error {};

const own = '$site_user:7';
let lists = [];   // what GET channels answers, in turn (the last one repeats)
let asked = 0;    // GET channels requests
globalThis.fetch = async () => {
  const channels = lists[Math.min(asked, lists.length - 1)];
  asked++;
  return { ok: true, status: 200, json: async () => ({ user: { id: '7' }, websocket_url: 'ws://127.0.0.1:1/connection/websocket', channels }) };
};
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
const names = (list) => list.map((c) => c.name || c).join(' ');

const { Instant } = await import(process.argv[2]);
const out = {};

// A demotion and a promotion at once: the first answer after the push is a
// replica that has not followed yet; the second, again_ms later, has.
// again_ms is long beside the 5ms look: a loaded machine stalls Node's
// timers, and 30ms once let the second answer come before the look.
{
  const before = [{ name: '$site_staff', level: 'staff' }, { name: own, level: 'personal' }];
  const after = [{ name: '$site_editors', level: 'groups' }, { name: own, level: 'personal' }];
  lists = [before, before, after];
  const live = new Instant(StandInCentrifuge, {});
  const events = [];
  live.on('event', (ev) => events.push(ev.event_class));
  await live.start();
  live.client.subs.get(own).emit('publication', { data: { id: 'r1', event_class: 'instant.reauthorized', data: { again_ms: 300 } } });
  await wait(5);
  out.afterPush = names(live.channels);
  out.askedAfterPush = asked;
  await wait(400);
  out.afterAgain = names(live.channels);
  out.denied = names(live.denied);
  out.asked = asked;
  out.pushEmitted = events.join(',');
}

// The same class on a channel that is not the user's own is an app event.
{
  asked = 0;
  lists = [[{ name: '$room', level: 'users' }, { name: own, level: 'personal' }]];
  const live = new Instant(StandInCentrifuge, {});
  const events = [];
  live.on('event', (ev, ch) => events.push(ch + ' ' + ev.event_class));
  await live.start();
  live.client.subs.get('$room').emit('publication', { data: { id: 'x1', event_class: 'instant.reauthorized' } });
  await wait(5);
  out.elsewhere = events.join(',');
  out.elsewhereAsked = asked;
}

console.log(JSON.stringify(out));
