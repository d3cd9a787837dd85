// The demo's browser side: an ES module with no build step.
//
// The realtime part is instant's browser helper, served by the plugin at
// /instant/client.js: it asks the site which channels this visitor may
// read, connects, subscribes (with tokens for "$" channels), moves refused
// channels to "Not for you", asks again after the server closed the
// connection, drops duplicate events and this tab's own, and keeps the
// list of who is on $site_users. What is left here is the demo's own: how
// the pages show all that.
import { Instant } from '/instant/client.js';

const page = document.body.dataset.page;
const stateEl = document.getElementById('state');
const presenceChannel = '$site_users';
const live = new Instant(window.Centrifuge, { base: '/instant', presence: [presenceChannel] });
let everConnected = false;

function el(tag, className, text) {
  var e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setState(state, detail) {
  if (!stateEl) return;
  stateEl.textContent = state;
  stateEl.dataset.state = state;
  stateEl.className = 'state state-' + state;
  stateEl.title = detail || '';
}

function timeOf(date) {
  var d = date ? new Date(date) : new Date();
  if (isNaN(d.getTime())) d = new Date();
  return d;
}

function dataText(data) {
  return data === undefined || data === null ? '' : JSON.stringify(data);
}

// ---- the home page's event list ----------------------------------------

var eventsEl = document.getElementById('events');
var eventCount = 0;
// The list item of each event shown, by event id. Event ids come from
// whoever broadcasts: they are looked up here, never as element ids,
// which the page's own elements could share (an event "count" would
// find #event-count).
var eventItems = new Map();

function showEvent(channel, ev) {
  var id = String(ev.id || '');
  var existing = id ? eventItems.get(id) : undefined;
  if (existing) {
    // One event sent to several channels keeps its id: show it once and
    // list every channel it came through.
    var channels = existing.dataset.channels.split(' ');
    if (channels.indexOf(channel) < 0) {
      channels.push(channel);
      existing.dataset.channels = channels.join(' ');
      existing.querySelector('.event-channel').textContent = channels.join(', ');
    }
    return;
  }
  var li = el('li', 'event');
  if (id) eventItems.set(id, li);
  li.dataset.id = id;
  li.dataset.channel = channel;
  li.dataset.channels = channel;
  li.dataset.eventClass = ev.event_class || '';
  var when = timeOf(ev.date);
  var time = el('time', 'event-time', when.toLocaleTimeString());
  time.dateTime = when.toISOString();
  var head = el('div', 'event-head');
  head.append(time, el('code', 'event-channel', channel), el('span', 'badge event-class', ev.event_class || ''));
  li.append(head, el('p', 'event-message', ev.message || ''));
  var data = dataText(ev.data);
  if (data) li.append(el('pre', 'event-data', data));
  eventsEl.prepend(li);
  eventCount++;
  var count = document.getElementById('event-count');
  if (count) count.textContent = String(eventCount);
  var none = document.getElementById('no-events');
  if (none) none.hidden = true;
}

// ---- the broadcast page's table ------------------------------------------

var recentBody = document.querySelector('#recent-events tbody');

function rowFor(id, channel) {
  var rows = recentBody.querySelectorAll('tr.recent-event');
  for (var i = 0; i < rows.length; i++) {
    if (rows[i].dataset.id === id && rows[i].dataset.channel === channel) return rows[i];
  }
  return null;
}

function addRow(channel, ev, sender) {
  var id = String(ev.id || '');
  var existing = rowFor(id, channel);
  if (existing) {
    // The publication often comes before the site's answer, which
    // knows who sent the event.
    var by = existing.lastElementChild;
    if (sender && !by.textContent) by.textContent = sender;
    return;
  }
  var tr = el('tr', 'recent-event');
  tr.dataset.id = id;
  tr.dataset.channel = channel;
  var when = timeOf(ev.date);
  var time = el('time', '', when.toLocaleTimeString());
  time.dateTime = when.toISOString();
  var cells = [time, el('code', '', channel), el('span', 'badge', ev.event_class || ''),
    document.createTextNode(ev.message || ''), el('code', 'data', dataText(ev.data)),
    document.createTextNode(sender || '')];
  cells.forEach(function (c, k) {
    var td = el('td', k === 3 ? 'message' : '');
    td.append(c);
    tr.append(td);
  });
  recentBody.prepend(tr);
  updateCounts();
}

function updateCounts() {
  var counts = {};
  recentBody.querySelectorAll('tr.recent-event').forEach(function (tr) {
    counts[tr.dataset.channel] = (counts[tr.dataset.channel] || 0) + 1;
  });
  document.querySelectorAll('#channel-counts tbody tr').forEach(function (tr) {
    tr.querySelector('.count').textContent = String(counts[tr.dataset.channel] || 0);
  });
}

function setupForm() {
  var form = document.getElementById('broadcast-form');
  var result = document.getElementById('broadcast-result');
  if (!form || !result) return;
  form.addEventListener('submit', async function (e) {
    e.preventDefault();
    document.querySelectorAll('#broadcast-error, #broadcast-sent').forEach(function (n) { n.remove(); });
    var button = document.getElementById('broadcast-submit');
    var message = form.elements.message.value;
    button.disabled = true;
    result.hidden = false;
    result.className = 'flash';
    result.dataset.status = 'sending';
    result.dataset.message = message;
    result.textContent = 'Sending…';
    try {
      // live.fetch adds this tab's origin: the site broadcasts with it,
      // so this tab's helper drops the event and the row comes from the
      // answer alone.
      var res = await live.fetch('/broadcast', {
        method: 'POST',
        headers: { 'Accept': 'application/json' },
        body: new URLSearchParams(new FormData(form))
      });
      var answer = await res.json().catch(function () { return {}; });
      if (!res.ok) {
        result.className = 'flash error';
        result.dataset.status = 'error';
        result.textContent = answer.error || ('The site answered ' + res.status + '.');
        return;
      }
      result.className = 'flash ok';
      result.dataset.status = 'sent';
      result.dataset.id = answer.id;
      result.textContent = 'Sent to ' + answer.channels.join(', ') + '.';
      answer.channels.forEach(function (ch) {
        addRow(ch, { id: answer.id, date: answer.date, event_class: answer.event_class, message: answer.message, data: answer.data }, answer.sender);
      });
      form.elements.message.value = '';
    } catch (err) {
      result.className = 'flash error';
      result.dataset.status = 'error';
      result.textContent = 'Could not reach the site: ' + err.message;
    } finally {
      button.disabled = false;
    }
  });
}

// ---- channels, presence and the connection --------------------------------

const channelsEl = document.getElementById('channels');
const deniedEl = document.getElementById('denied');
const hereEl = document.getElementById('here');
const levelOrder = ['public', 'users', 'groups', 'staff', 'superuser', 'personal'];
const known = new Map(); // channel name → {name, level, group}: for "Not for you"

function levelBadge(ch) {
  return el('span', 'badge level-' + ch.level, ch.level + (ch.group ? ': ' + ch.group : ''));
}

function placeholder(list, text) {
  if (!list) return;
  const p = list.querySelector('.placeholder');
  if (list.querySelector('.channel')) {
    if (p) p.remove();
  } else if (!p) {
    list.append(el('li', 'muted placeholder', text));
  }
}

// deny lists ch under "Not for you", in level order, once.
function deny(ch) {
  if (!deniedEl || !ch) return;
  const items = [...deniedEl.querySelectorAll('.channel')];
  if (items.some((li) => li.dataset.channel === ch.name)) return;
  const li = el('li', 'channel denied');
  li.dataset.channel = ch.name;
  li.dataset.level = ch.level;
  li.append(el('code', '', ch.name), document.createTextNode(' '), levelBadge(ch));
  const rank = levelOrder.indexOf(ch.level);
  const before = items.find((other) => levelOrder.indexOf(other.dataset.level) > rank);
  deniedEl.insertBefore(li, before || null);
  placeholder(deniedEl, 'None: you may read every configured channel.');
}

// showLoggedOut turns the header into an anonymous visitor's, once the
// site says the visitor is no longer logged in.
function showLoggedOut() {
  const who = document.getElementById('whoami');
  if (!who || who.dataset.user === '') return;
  who.dataset.user = '';
  who.textContent = 'anonymous';
  const logout = document.getElementById('logout');
  const form = logout && logout.closest('form');
  if (form) {
    const login = el('a', '', 'Log in');
    login.id = 'login-link';
    login.href = '/login';
    form.replaceWith(login);
  }
  document.querySelectorAll('.topbar nav a[href="/broadcast"]').forEach((a) => a.remove());
  const here = document.getElementById('here-card');
  if (here) here.hidden = true;
}

// showUser keeps the header in step with the roles the site reports now
// (the admin page may have changed them since the page loaded): the
// label, as site.go's describeUser writes it, and the Broadcast link.
function showUser(user) {
  const who = document.getElementById('whoami');
  if (!who || who.dataset.user !== user.username) return;
  const groups = user.groups || [];
  const staff = user.staff || user.superuser;
  const role = user.superuser ? 'superuser' : user.staff ? 'staff' : groups.length ? groups.join(', ') : 'plain user';
  who.textContent = user.username + ' (' + role + ')';
  const nav = document.querySelector('.topbar nav');
  const link = nav && nav.querySelector('a[href="/broadcast"]');
  if (staff && nav && !link) {
    const a = el('a', '', 'Broadcast');
    a.href = '/broadcast';
    nav.querySelector('a[href="/"]').after(a);
  } else if (!staff && link) {
    link.remove();
  }
}

function channelItem(ch) {
  const li = el('li', 'channel');
  li.dataset.channel = ch.name;
  li.dataset.level = ch.level;
  li.dataset.state = 'unsubscribed';
  li.append(el('code', '', ch.name), document.createTextNode(' '), levelBadge(ch), el('span', 'channel-state', 'unsubscribed'));
  return li;
}

function setChannelState(li, state, detail) {
  if (!li) return;
  li.dataset.state = state;
  const s = li.querySelector('.channel-state');
  s.textContent = state;
  s.title = detail || '';
}

// showChannels mirrors the helper's lists: channels held, and channels
// the site refused since the page loaded. A channel granted later (the
// admin page promoted the visitor) leaves "Not for you".
function showChannels(channels, denied) {
  if (!channelsEl) return;
  channels.forEach((ch) => known.set(ch.name, ch));
  const held = new Set(channels.map((ch) => ch.name));
  channelsEl.querySelectorAll('.channel').forEach((li) => {
    if (!held.has(li.dataset.channel)) li.remove();
  });
  if (deniedEl) {
    deniedEl.querySelectorAll('.channel').forEach((li) => {
      if (held.has(li.dataset.channel)) li.remove();
    });
  }
  channels.forEach((ch) => {
    if (!channelsEl.querySelector('.channel[data-channel="' + CSS.escape(ch.name) + '"]')) channelsEl.append(channelItem(ch));
  });
  denied.forEach((name) => deny(known.get(name) || { name, level: 'rule' }));
  placeholder(channelsEl, 'None.');
  placeholder(deniedEl, 'None: you may read every configured channel.');
  if (live.user) showUser(live.user);
  else showLoggedOut();
}

function showMembers(members) {
  if (!hereEl) return;
  hereEl.textContent = '';
  members.forEach((m) => {
    const li = el('li', 'member');
    li.dataset.user = m.user;
    const name = (m.info && m.info.name) || 'user ' + m.user;
    li.append(el('span', 'member-name', name));
    if (m.clients > 1) li.append(el('span', 'badge', m.clients + ' tabs'));
    hereEl.append(li);
  });
  if (members.length === 0) hereEl.append(el('li', 'muted placeholder', 'Nobody.'));
  const count = document.getElementById('here-count');
  if (count) count.textContent = String(members.length);
}

const received = []; // ids of the events the helper handed over, for tests
live.on('state', (state, reason) => {
  if (state === 'connected') everConnected = true;
  setState(state === 'connecting' && everConnected ? 'reconnecting' : state, reason);
});
live.on('channels', showChannels);
live.on('subscription', (name, state, reason) => {
  setChannelState(channelsEl && channelsEl.querySelector('.channel[data-channel="' + CSS.escape(name) + '"]'), state, reason);
});
live.on('event', (ev, channel) => {
  received.push(ev.id);
  if (page === 'home' && eventsEl) showEvent(channel, ev);
  if (page === 'broadcast' && recentBody) addRow(channel, ev, '');
});
live.here(presenceChannel, showMembers);

if (page === 'broadcast') setupForm();
if (stateEl) {
  live.start().then(() => {
    window.instantDemo = { live, centrifuge: live.client, received };
  }).catch((err) => setState('disconnected', err.message));
}
