// What the Node scripts that drive client.js against a real Centrifugo
// share (clientjs_live.mjs, storm.mjs): talking to the Go test that runs
// them (one JSON line on stdout, answered with one on stdin), sleep, and a
// WebSocket that closes as a browser's does.

import readline from 'node:readline';

const replies = [];
let waiting = null;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line);
  if (waiting) {
    const w = waiting;
    waiting = null;
    w(msg);
  } else replies.push(msg);
});

// ask sends msg to the test and resolves to its answer.
export function ask(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n');
  return new Promise((resolve) => {
    if (replies.length) resolve(replies.shift());
    else waiting = resolve;
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Node's WebSocket (20, experimental) reports a refused connection with an
// error event but no close event, which browsers fire after it: without
// one, centrifuge-js waits for its connect timeout (5 s) before trying
// again. This one closes as a browser's would.
export class BrowserLikeWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    let closed = false;
    this.addEventListener('close', () => { closed = true; });
    this.addEventListener('error', () => setTimeout(() => {
      if (closed || this.readyState === WebSocket.OPEN) return;
      const ev = new Event('close');
      Object.defineProperties(ev, { code: { value: 1006 }, reason: { value: '' }, wasClean: { value: false } });
      this.dispatchEvent(ev);
    }, 0));
  }
}
