// client.js with the real centrifuge-js 5, under Node, against a real
// Centrifugo and the app's routes (TestClientJSLive starts them). The test
// serves each user's routes under <app>/as/<id>/instant, with that user's
// session. The script asks the test to act (restart Centrifugo, broadcast,
// count the app's requests) with one JSON line on stdout, answered with
// one on stdin, and ends with {"result": {...}}.
// Usage: node [--experimental-websocket] clientjs_live.mjs client.js centrifuge.mjs <app URL> valid|expired|tags|untagged|refusals

import { ask, sleep, BrowserLikeWebSocket } from './nodepage.mjs';

const [clientJS, centrifugeJS, app, phase] = process.argv.slice(2);
const { Instant } = await import(clientJS);
const { Centrifuge } = await import(centrifugeJS);


async function until(what, cond, limit = 20000) {
  const end = Date.now() + limit;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(20);
  }
}


// page is one browser tab of user id, logging what happens to it.
function page(id, options = {}) {
  const live = new Instant(Centrifuge, {
    base: app + '/as/' + id + '/instant',
    presence: true,
    centrifuge: { websocket: BrowserLikeWebSocket, maxReconnectDelay: 1000 },
    ...options,
  });
  live.log = { events: [], people: [], states: [], subscribed: 0 };
  live.on('event', (ev, channel) => live.log.events.push(channel + ' ' + ev.message));
  live.on('state', (state, reason) => {
    live.log.states.push(state);
    console.error(new Date().toISOString(), 'page', id, state, reason); // shown when the test fails
  });
  live.on('subscription', (name, state, reason) => console.error(new Date().toISOString(), 'page', id, name, state, reason));
  live.on('subscription', (name, state) => { if (state === 'subscribed') live.log.subscribed++; });
  // The README's presence example, as written.
  live.here('$project-7', (members) => live.log.people.push('here ' + members.map((m) => m.info.name ?? m.user).join(',')));
  live.joining('$project-7', (m) => live.log.people.push('joining ' + (m.info.name ?? m.user) + ' ' + JSON.stringify(m.info)));
  live.leaving('$project-7', (m) => live.log.people.push('leaving ' + (m.info.name ?? m.user)));
  live.on('error', (e) => console.error('page ' + id + ':', e && e.message));
  return live;
}
const subscribedAll = (live) => !!live.client && live.channels.length > 0 && live.channels.every((c) => {
  const sub = live.client.getSubscription(c.name);
  return !!sub && sub.state === 'subscribed';
});
const held = (live) => live.channels.map((c) => c.name).join(' ');
const delta = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] || 0)]).filter(([, v]) => v));

// The private channels ann's page tracks the members of: it asks the app
// (POST presence) for their snapshots once they are subscribed.
const tracked = ['$project-7', '$project-8', '$site_user:1', '$site_users'];
// asked waits until the app was asked for the members of every tracked
// channel since the hits `since`, and answers the hits since then.
async function asked(since) {
  const end = Date.now() + 20000;
  for (;;) {
    const d = delta(since, (await ask({ do: 'hits' })).hits);
    const named = new Set(Object.keys(d).filter((k) => k.startsWith('presence ')).flatMap((k) => k.slice('presence '.length).split('+')));
    if (tracked.every((ch) => named.has(ch))) return d;
    if (Date.now() > end) throw new Error('timed out waiting for the presence requests: ' + JSON.stringify(d));
    await sleep(50);
  }
}

// The server's refusals (TestClientJSLiveRefusals) are a run of their own.
if (phase === 'refusals') {
  await refusals();
  process.exit(0);
}

// "To others" (tags_test.go) is a run of its own.
if (phase === 'tags' || phase === 'untagged') {
  await toOthers();
  process.exit(0);
}

const result = {};
const ann = page('1');
ann.subscribe('$project-7').subscribe('$project-8').subscribe('$project-9');
await ann.start();
await until('ann subscribed', () => ann.state === 'connected' && ann.channels.length === 5 && subscribedAll(ann) && ann.denied.includes('$project-9'));
result.held = held(ann);
result.denied = ann.denied.join(' ');
result.start = await asked({});

if (phase === 'valid') {
  // Another user on the rule channel: presence, with no info for them.
  const bob = page('2');
  bob.subscribe('$project-7');
  await bob.start();
  await until('ann sees bob', () => ann.log.people.some((p) => p.startsWith('joining 2')));
  await until('the members', () => ann.members('$project-7').length === 2);
  result.members = ann.members('$project-7').map((m) => m.user + ' ' + JSON.stringify(m.info)).join(', ');
  // bob came after ann: he knows her from the snapshot the app gave.
  await until('bob sees ann', () => bob.members('$project-7').length === 2);
  result.bobMembers = bob.members('$project-7').map((m) => m.user + ' ' + JSON.stringify(m.info)).join(', ');
  // Events on the rule channel: one, the same again (a retry), one that
  // ann's own tab caused.
  await ask({ do: 'broadcast', channel: '$project-7', id: 'e1', message: 'project news' });
  await ask({ do: 'broadcast', channel: '$project-7', id: 'e1', message: 'project news again' });
  await ask({ do: 'broadcast', channel: '$project-7', id: 'e2', message: 'caused by ann', origin: ann.origin });
  await ask({ do: 'broadcast', channel: '$project-8', id: 'e3', message: 'second project' });
  await until('the events', () => ann.log.events.length >= 2 && bob.log.events.length >= 2);
  await sleep(300); // room for one that should not come
  result.events = ann.log.events.join(', ');
  result.bobEvents = bob.log.events.join(', ');
  bob.stop();
  await until('bob leaving', () => ann.log.people.some((p) => p === 'leaving 2'));
  result.people = ann.log.people.join('; ');

  // Centrifugo restarts under the page; every token is still valid.
  const before = (await ask({ do: 'hits' })).hits;
  const subscribed = ann.log.subscribed;
  const t0 = Date.now();
  await ask({ do: 'restart' });
  await until('ann back', () => ann.state === 'connected' && ann.log.subscribed >= subscribed + 5 && subscribedAll(ann));
  result.resubscribedMs = Date.now() - t0;
  result.restart = await asked(before);
  await ask({ do: 'broadcast', channel: '$project-8', id: 'e4', message: 'after the restart' });
  await until('the event after the restart', () => ann.log.events.includes('$project-8 after the restart'));

  // start() after stop(): everything back, own channels included.
  ann.stop();
  result.stopped = ann.state + ' ' + held(ann);
  const beforeStart = (await ask({ do: 'hits' })).hits;
  await ann.start();
  await until('ann started again', () => ann.state === 'connected' && ann.channels.length === 5 && subscribedAll(ann));
  result.restarted = held(ann);
  result.startAgain = await asked(beforeStart);
  await ask({ do: 'broadcast', channel: '$project-7', id: 'e5', message: 'after start again' });
  await until('the event after start again', () => ann.log.events.includes('$project-7 after start again'));
} else {
  // Centrifugo is down longer than the tokens live (the test gives them 5 s).
  await ask({ do: 'stop' });
  await until('ann disconnected', () => ann.state !== 'connected');
  await sleep(6500);
  const before = (await ask({ do: 'hits' })).hits;
  const subscribed = ann.log.subscribed;
  const t0 = Date.now();
  await ask({ do: 'start' });
  await until('ann back', () => ann.state === 'connected' && ann.log.subscribed >= subscribed + 5 && subscribedAll(ann));
  result.resubscribedMs = Date.now() - t0;
  result.restart = await asked(before);
  await ask({ do: 'broadcast', channel: '$project-7', id: 'e6', message: 'after the outage' });
  await until('the event after the outage', () => ann.log.events.includes('$project-7 after the outage'));
  // Connected for 8 s: the tokens are renewed, the connection's and the
  // four subscriptions' together.
  const renew = (await ask({ do: 'hits' })).hits;
  await sleep(8000);
  result.renewals = delta(renew, (await ask({ do: 'hits' })).hits);
  result.stillConnected = ann.state;
}
ann.stop();
process.stdout.write(JSON.stringify({ result }) + '\n');
process.exit(0);

// "To others" (tags_test.go): two tabs of ann, a and b. Tab a causes 100
// events on each of three channels (one private without a namespace, one
// of a rule's namespace, one public), tagged with its origin; nobody
// causes 10. Every publication that reaches a tab's Centrifuge
// subscriptions is counted on the wire (before the helper sees it), by
// the first word of its message; so is what the helper hands the page.
// Phase 'tags': Centrifugo has allow_tags_filter (the generated config);
// 'untagged': it has not, and the helper falls back to its own drop.
async function toOthers() {
  const result = {};
  const channels = ['$site_users', '$team:1', 'site_public'];
  const tab = (name) => {
    const live = page('1', { presence: false });
    live.subscribe('$team:1');
    live.wire = {};
    live.got = {};
    live.unsubscribed = 0;
    live.on('subscription', (ch, state) => { if (state === 'unsubscribed') live.unsubscribed++; });
    live.on('event', (ev, ch) => {
      const k = ch + ' ' + ev.message.split(' ')[0];
      live.got[k] = (live.got[k] || 0) + 1;
    });
    live.name = name;
    return live;
  };
  const a = tab('a');
  const b = tab('b');
  await a.start();
  await b.start();
  const ready = (live) => live.state === 'connected' && channels.every((ch) => {
    const sub = live.client.getSubscription(ch);
    return !!sub && sub.state === 'subscribed';
  });
  await until('both tabs subscribed', () => ready(a) && ready(b));
  for (const live of [a, b]) {
    for (const ch of channels) {
      live.client.getSubscription(ch).on('publication', (ctx) => {
        const k = ch + ' ' + String(ctx.data && ctx.data.message).split(' ')[0];
        live.wire[k] = (live.wire[k] || 0) + 1;
      });
    }
  }
  result.unsubscribed = a.unsubscribed + b.unsubscribed;
  // Bursts, then an end mark each channel: a tab that has the mark has
  // every publication sent before it (a channel keeps its order).
  let mark = 0;
  const send = async (what, origin, n) => {
    for (const ch of channels) await ask({ do: 'burst', channel: ch, message: what, origin, n });
    const end = 'end' + ++mark;
    for (const ch of channels) await ask({ do: 'burst', channel: ch, message: end, origin: '', n: 1 });
    await until(end, () => [a, b].every((live) => channels.every((ch) => live.wire[ch + ' ' + end] === 1)));
  };
  const first = a.origin;
  await send('mine', a.origin, 100);
  await send('nobody', '', 10);
  result.wireA = pick(a.wire, ['mine', 'nobody']);
  result.wireB = pick(b.wire, ['mine', 'nobody']);
  result.gotA = pick(a.got, ['mine', 'nobody']);
  result.gotB = pick(b.got, ['mine', 'nobody']);
  result.droppedA = a.droppedOwn;
  result.byChannelA = { ...a.wire };
  // The site mints tab a a new origin (a refresh): the subscriptions keep
  // the filter they were made with until they subscribe again, and the
  // helper drops what comes; after Centrifugo restarts, the filter holds
  // the new origin and the old one.
  await a.refresh();
  result.newOrigin = a.origin !== first;
  await send('fresh', a.origin, 10);
  const subscribed = [a.log.subscribed, b.log.subscribed];
  await ask({ do: 'restart' });
  await until('both tabs back', () => ready(a) && ready(b) &&
    a.log.subscribed >= subscribed[0] + channels.length && b.log.subscribed >= subscribed[1] + channels.length);
  await send('again', a.origin, 10);
  await send('old', first, 10);
  result.wireA2 = pick(a.wire, ['fresh', 'again', 'old']);
  result.gotA2 = pick(a.got, ['fresh', 'again', 'old']);
  result.wireB2 = pick(b.wire, ['fresh', 'again', 'old']);
  a.stop();
  b.stop();
  process.stdout.write(JSON.stringify({ result }) + '\n');
}

// pick sums counts by their message word, over the channels.
function pick(counts, words) {
  const out = {};
  for (const w of words) out[w] = 0;
  for (const [k, n] of Object.entries(counts)) {
    const w = k.split(' ')[1];
    if (w in out) out[w] += n;
  }
  return out;
}

// refusals: a page of an app whose token secret is not Centrifugo's (served
// under /as/wrong), and a page of ann's that subscribes to a rule channel
// whose namespace the running Centrifugo's config lacks ("$ghost:1": the
// rule came after the config was written). Each says what the server
// answered, through 'error' (code and reason) and 'state'.
async function refusals() {
  const out = {};
  const watch = (live) => {
    live.told = [];
    live.states = [];
    live.on('error', (e) => live.told.push(e));
    live.on('state', (state, reason) => live.states.push(state + (reason ? ' (' + reason + ')' : '')));
    return live;
  };
  const wrong = watch(page('wrong', { presence: false }));
  await wrong.start();
  await until('the wrong secret refused', () => wrong.told.some((e) => e.code >= 3000));
  const e = wrong.told.find((e) => e.code >= 3000);
  out.wrongSecret = e.code + ' ' + e.reason;
  out.wrongSecretSays = e.message;
  out.wrongStates = wrong.states.join(' | ');
  wrong.stop();

  const ann = watch(page('1', { presence: false }));
  ann.subscribe('$ghost:1');
  await ann.start();
  await until('$ghost:1 denied', () => ann.denied.includes('$ghost:1') && subscribedAll(ann));
  const g = ann.told.find((e) => e.channel === '$ghost:1');
  out.ghost = g ? g.code + ' ' + g.reason : 'no error';
  out.ghostSays = g ? g.message : '';
  out.ghostHeld = held(ann);
  out.ghostDenied = ann.denied.join(' ');
  out.annTold = ann.told.length;
  ann.stop();
  process.stdout.write(JSON.stringify({ result: out }) + '\n');
}
