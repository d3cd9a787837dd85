// A reconnect storm (the storm phase of `make load`, load_test.go): a
// thousand pages in one Node process, each a client.js Instant with its own
// centrifuge-js client and its own session cookie, holding its connection
// and four private channels (site_public, $site_users and $site_user:<id>
// as the site lists them, two rule channels it subscribes to itself),
// against the app and a real Centrifugo that the test kills and starts
// again under them. The script asks the test to act (stop, start or
// restart Centrifugo) with one JSON line on stdout, answered with one on
// stdin, and ends with {"result": {...}}: what the pages asked the app for
// and when they were back, by phase.
//
// mode "batched" is client.js as it is: one POST auth for the connection's
// token and every private channel's, tokens reused while valid.
// mode "per-channel" is the old way, as client.js was before it batched:
// each token from its own request (connection_token, subscription_token),
// kept by centrifuge-js across reconnects until Centrifugo refuses it as
// expired (109).
//
// scenario "valid": Centrifugo is restarted while every token is valid.
// scenario "expired": Centrifugo stays down past the tokens' lifetime
// (the test gives them ttlMs), then starts.
//
// Usage: node [--experimental-websocket] storm.mjs client.js centrifuge.mjs
//        <app URL> batched|per-channel valid|expired <cookies.json> <ttlMs>
// cookies.json holds one session cookie (name=value) per page, of a user
// logged in: a page per cookie.

import fs from 'node:fs';
import http from 'node:http';
import { ask, sleep, BrowserLikeWebSocket } from './nodepage.mjs';

const [clientJS, centrifugeJS, app, mode, scenario, cookiesFile, ttlArg] = process.argv.slice(2);
const cookies = JSON.parse(fs.readFileSync(cookiesFile, 'utf8'));
const N = cookies.length;
const TTL_MS = Number(ttlArg);
const { Instant } = await import(clientJS);
const { Centrifuge } = await import(centrifugeJS);

// ---- talking to the test --------------------------------------------------


async function until(cond, limit) {
  const end = Date.now() + limit;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}

// ---- one cookie jar per page ----------------------------------------------
//
// client.js calls the global fetch with base + route. Each page's base is
// <app>/page/<k>/instant: this fetch sends a request under /page/<k>/ to
// the app without that prefix, with page k's cookies (its session, then
// what the app's Set-Cookie headers give it), as page k's browser would,
// and counts it. It goes through node:http with keep-alive rather than
// Node's fetch, which costs this one process twice the CPU a request.

const pages = [];
let inflight = 0; // requests sent and not answered
const agent = new http.Agent({ keepAlive: true });
const pagePath = /^\/page\/(\d+)(\/.*)$/;
globalThis.fetch = async (input, init = {}) => {
  const url = new URL(String(input));
  const m = pagePath.exec(url.pathname);
  if (!m) throw new Error('storm: a request outside the pages: ' + url);
  const p = pages[Number(m[1])];
  url.pathname = m[2];
  const route = m[2].startsWith('/instant/') ? m[2].slice('/instant/'.length) : m[2];
  const hits = (p.hits[p.phase] ||= {});
  hits[route] = (hits[route] || 0) + 1;
  const headers = Object.fromEntries(new Headers(init.headers || {}));
  headers.cookie = [...p.jar].map(([k, v]) => k + '=' + v).join('; ');
  if (init.body != null) headers['content-length'] = Buffer.byteLength(init.body);
  let res;
  inflight++;
  try {
    res = await new Promise((resolve, reject) => {
      const req = http.request(url, { method: init.method || 'GET', agent, headers }, (r) => {
        const chunks = [];
        r.on('data', (c) => chunks.push(c));
        r.on('end', () => resolve({ r, body: Buffer.concat(chunks) }));
        r.on('error', reject);
      });
      req.on('error', reject);
      req.end(init.body ?? undefined);
    });
  } catch (e) {
    p.errors.push(p.phase + ' ' + route + ': ' + e.message);
    throw e;
  } finally {
    inflight--;
  }
  const { r, body } = res;
  for (const c of r.headers['set-cookie'] || []) {
    const [pair] = c.split(';');
    const eq = pair.indexOf('=');
    if (eq > 0) p.jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  if (r.statusCode >= 400) p.errors.push(p.phase + ' ' + route + ' answered ' + r.statusCode);
  const h = new Headers();
  for (let k = 0; k < r.rawHeaders.length; k += 2) h.append(r.rawHeaders[k], r.rawHeaders[k + 1]);
  const empty = r.statusCode === 204 || r.statusCode === 304;
  return new Response(empty ? null : body, { status: r.statusCode, headers: h });
};

// ---- pages ----------------------------------------------------------------


// PerChannel is the old way (see the top): client.js with its token source
// replaced. It leans on two of client.js's private methods: _token (the
// getToken of the client and of every "$" subscription) and
// _renewConnection (the old helper never dropped a token itself).
class PerChannel extends Instant {
  async _token(key) {
    const route = key === '' ? 'connection_token' : 'subscription_token';
    const res = await fetch(this.base + '/' + route, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(key === '' ? {} : { channel: key }),
    });
    if (res.status === 401 || res.status === 403) throw new this.Centrifuge.UnauthorizedError(route + ' refused: ' + res.status);
    if (!res.ok) throw new Error('instant: ' + route + ' answered ' + res.status);
    return (await res.json()).token;
  }

  _renewConnection() {}
}

const CHANNELS = 5; // site_public and the four private ones

// centrifuge-js waits 0.5 s, doubling up to 20 s with full jitter, between
// attempts to reconnect. Capped at 2 s, every page comes back within a few
// seconds of Centrifugo: a harder storm for the app and Centrifugo than
// the default spread, and one bounded in time.
const MAX_RECONNECT_DELAY = 2000;

const subscribedAll = (live) => !!live.client && live.channels.length === CHANNELS && live.channels.every((c) => {
  const sub = live.client.getSubscription(c.name);
  return !!sub && sub.state === 'subscribed';
});

// A page's phase: 'start'; 'outage' from the moment Centrifugo is stopped;
// 'back' from the moment it answers again; 'after' once the page has its
// connection and every channel again. Requests and refusals are counted by
// phase.
function makePage(k) {
  const eq = cookies[k].indexOf('=');
  const p = {
    k, phase: 'start', jar: new Map([[cookies[k].slice(0, eq), cookies[k].slice(eq + 1)]]),
    hits: {}, errors: [], refusals: {}, dials: [], opens: [], wentDown: false, backAt: 0, lost: 0,
  };
  pages[k] = p;
  const WS = class extends BrowserLikeWebSocket {
    constructor(...args) {
      super(...args);
      p.dials.push(Date.now());
      this.addEventListener('open', () => p.opens.push(Date.now()));
    }
  };
  const Kind = mode === 'batched' ? Instant : PerChannel;
  const live = new Kind(Centrifuge, {
    base: app + '/page/' + k + '/instant',
    centrifuge: { websocket: WS, maxReconnectDelay: MAX_RECONNECT_DELAY },
  });
  live.subscribe('$project-' + (k % 100)).subscribe('$project-' + (100 + (k % 100)));
  live.on('error', (e) => p.errors.push(p.phase + ' instant: ' + (e && e.message)));
  live.on('state', (state) => {
    if (state !== 'connected' && (p.phase === 'outage' || p.phase === 'back')) p.wentDown = true;
    check(p);
  });
  live.on('subscription', (name, state, reason) => {
    if (state === 'unsubscribed') {
      p.lost++;
      p.errors.push(p.phase + ' ' + name + ' unsubscribed: ' + reason);
    }
    check(p);
  });
  p.live = live;
  return p;
}

function refusal(p, what, ctx) {
  const code = ctx && ctx.error && ctx.error.code;
  if (code === undefined || ctx.type === 'transport') return; // Centrifugo down: not a refusal
  const key = p.phase + ' ' + what + ' ' + code;
  p.refusals[key] = (p.refusals[key] || 0) + 1;
}

function listen(p) {
  p.live.client.on('error', (ctx) => refusal(p, 'connect', ctx));
  for (const sub of Object.values(p.live.client.subscriptions())) sub.on('error', (ctx) => refusal(p, 'subscribe', ctx));
}

function check(p) {
  if (p.phase !== 'back' || !p.wentDown || p.live.state !== 'connected' || !subscribedAll(p.live)) return;
  p.backAt = Date.now();
  p.phase = 'after';
}

// ---- the storm ------------------------------------------------------------

const result = { pages: N, mode, scenario };
let downAt = 0; // Centrifugo stopped
let upAt = 0; // Centrifugo answering again
let waited = 0; // from upAt until every page was back, or the limit
// each runs f on every page, at most `at` at a time.
async function each(f, at = 50) {
  let next = 0;
  await Promise.all(Array.from({ length: at }, async () => {
    while (next < pages.length) await f(pages[next++]);
  }));
}

const t0 = Date.now();
for (let k = 0; k < N; k++) makePage(k);
await each((p) => p.live.start());
if (!await until(() => pages.every((p) => p.live.state === 'connected' && subscribedAll(p.live)), 60000)) {
  const up = pages.filter((p) => p.live.state === 'connected' && subscribedAll(p.live)).length;
  result.failed = up + ' of ' + N + ' pages connected and subscribed within 60 s of starting';
  finish();
}
result.startupMs = Date.now() - t0;
for (const p of pages) listen(p);
await sleep(500); // the last subscribe replies' work done

const mark = (phase) => { for (const p of pages) if (p.phase !== 'after') p.phase = phase; };
mark('outage');
downAt = Date.now();
if (scenario === 'valid') {
  result.restartMs = (await ask({ do: 'restart' })).ms;
} else {
  await ask({ do: 'stop' });
  await until(() => pages.every((p) => p.live.state !== 'connected'), 10000);
  // Past the lifetime of every token, those asked for since the stop too.
  await sleep(TTL_MS + 2000);
  await ask({ do: 'start' });
}
upAt = Date.now();
result.outageMs = upAt - downAt;
mark('back');
for (const p of pages) check(p); // pages the outage passed by (none expected)
await until(() => pages.every((p) => p.phase === 'after'), 30000);
waited = Date.now() - upAt;
await sleep(300); // requests in flight counted
finish();

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return { n: 0 };
  const sum = s.reduce((a, b) => a + b, 0);
  return { n: s.length, mean: sum / s.length, p50: s[Math.floor(s.length / 2)], max: s[s.length - 1], min: s[0] };
}

function finish() {
  const back = pages.filter((p) => p.backAt);
  const sumHits = (phase) => {
    const out = {};
    for (const p of pages) for (const [route, n] of Object.entries(p.hits[phase] || {})) out[route] = (out[route] || 0) + n;
    return out;
  };
  const count = (p, phase) => Object.values(p.hits[phase] || {}).reduce((a, b) => a + b, 0);
  const dist = (phases) => {
    const out = {};
    for (const p of pages) {
      const n = phases.reduce((a, ph) => a + count(p, ph), 0);
      out[n] = (out[n] || 0) + 1;
    }
    return out;
  };
  const refusals = {};
  for (const p of pages) for (const [k, n] of Object.entries(p.refusals)) refusals[k] = (refusals[k] || 0) + n;
  const errors = pages.flatMap((p) => p.errors.map((e) => 'page ' + p.k + ' ' + e));
  Object.assign(result, {
    back: back.length,
    waitedMs: waited,
    // From Centrifugo answering again to each page's last channel subscribed.
    backMs: stats(back.map((p) => p.backAt - upAt)),
    // From a page's first connection that reached the restarted Centrifugo
    // to its last channel subscribed: its own reconnect, without the
    // backoff it was in.
    ownMs: stats(back.map((p) => p.backAt - (p.opens.find((t) => t >= downAt) ?? upAt))),
    dialsAfterUp: stats(back.map((p) => p.dials.filter((t) => t >= upAt).length)),
    requests: { start: sumHits('start'), outage: sumHits('outage'), back: sumHits('back'), after: sumHits('after') },
    // Requests per page from the stop until the page was back.
    perPage: stats(pages.map((p) => count(p, 'outage') + count(p, 'back'))),
    perPageOutage: stats(pages.map((p) => count(p, 'outage'))),
    perPageBack: stats(pages.map((p) => count(p, 'back'))),
    distribution: dist(['outage', 'back']),
    refusals,
    errorCount: errors.length,
    errors: errors.slice(0, 20),
    lost: pages.reduce((a, p) => a + p.lost, 0),
    inflight,
  });
  process.stdout.write(JSON.stringify({ result }) + '\n');
  process.exit(0);
}
