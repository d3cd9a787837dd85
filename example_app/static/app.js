// The demo's browser side, plain JavaScript with no build step.
//
// It asks the site which channels this visitor may read (GET
// /instant/channels), connects to Centrifugo with a connection token from
// the site, subscribes to each channel (a "$" channel with a subscription
// token from the site, fetched again whenever Centrifugo wants a fresh one)
// and shows every event as it arrives. When the site refuses a
// subscription token (the visitor logged out in another tab, say), it asks
// again which channels are granted and moves the others to "Not for you";
// so it does when the site closes the connection (on a logout), before
// connecting again.
(function () {
  'use strict';

  var page = document.body.dataset.page;
  var stateEl = document.getElementById('state');
  var everConnected = false;

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

  // fetchToken posts to one of the plugin's token routes. A refusal (401,
  // 403) calls onRefused, then tells centrifuge-js to stop asking; other
  // failures make it retry.
  async function fetchToken(path, body, onRefused) {
    var res = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(body || {})
    });
    if (res.status === 401 || res.status === 403) {
      if (onRefused) onRefused();
      throw new Centrifuge.UnauthorizedError(path + ' refused with ' + res.status);
    }
    if (!res.ok) {
      throw new Error(path + ' answered ' + res.status);
    }
    return (await res.json()).token;
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
        var res = await fetch('/broadcast', {
          method: 'POST',
          credentials: 'same-origin',
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

  // ---- channels and the connection -----------------------------------------

  var channelsEl = document.getElementById('channels');
  var deniedEl = document.getElementById('denied');
  var levelOrder = ['public', 'users', 'groups', 'staff', 'superuser'];
  // Centrifugo's codes for closing a connection that the client is not to
  // open again by itself: ordered through the server API (instant's
  // Disconnect, on a logout or a role change), and a refreshed connection
  // token for another user (the login ended, so the site now signs
  // anonymous tokens).
  var reconnectCodes = { 3503: 'force disconnect', 3500: 'invalid token' };
  var centrifuge = null;
  var held = new Map(); // channel name → {ch, sub, li}

  function fetchChannels() {
    return fetch('/instant/channels', { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('/instant/channels answered ' + res.status);
        return res.json();
      });
  }

  function levelBadge(ch) {
    return el('span', 'badge level-' + ch.level, ch.level + (ch.group ? ': ' + ch.group : ''));
  }

  function placeholder(list, text) {
    if (!list) return;
    var p = list.querySelector('.placeholder');
    if (list.querySelector('.channel')) {
      if (p) p.remove();
    } else if (!p) {
      list.append(el('li', 'muted placeholder', text));
    }
  }

  // deny lists ch under "Not for you", in level order, once.
  function deny(ch) {
    if (!deniedEl) return;
    var items = [...deniedEl.querySelectorAll('.channel')];
    if (items.some(function (li) { return li.dataset.channel === ch.name; })) return;
    var li = el('li', 'channel denied');
    li.dataset.channel = ch.name;
    li.dataset.level = ch.level;
    li.append(el('code', '', ch.name), document.createTextNode(' '), levelBadge(ch));
    var rank = levelOrder.indexOf(ch.level);
    var before = items.find(function (other) { return levelOrder.indexOf(other.dataset.level) > rank; });
    deniedEl.insertBefore(li, before || null);
    placeholder(deniedEl, 'None: you may read every configured channel.');
  }

  // showLoggedOut turns the header into an anonymous visitor's, once the
  // site says the visitor is no longer logged in.
  function showLoggedOut() {
    var who = document.getElementById('whoami');
    if (!who || who.dataset.user === '') return;
    who.dataset.user = '';
    who.textContent = 'anonymous';
    var logout = document.getElementById('logout');
    var form = logout && logout.closest('form');
    if (form) {
      var login = el('a', '', 'Log in');
      login.id = 'login-link';
      login.href = '/login';
      form.replaceWith(login);
    }
    document.querySelectorAll('.topbar nav a[href="/broadcast"]').forEach(function (a) { a.remove(); });
  }

  // recheck asks the site again which channels this visitor may read,
  // after it refused a subscription token or closed the connection: the
  // visitor logged out (or lost a role) since the page was loaded. Each
  // held channel no longer granted is dropped and listed under "Not for
  // you", and the header shows a visitor no longer logged in. Calls that
  // come together share one request.
  var rechecking = null;
  function recheck() {
    if (rechecking) return rechecking;
    rechecking = fetchChannels().then(function (info) {
      var granted = new Set((info.channels || []).map(function (ch) { return ch.name; }));
      held.forEach(function (h, name) {
        if (granted.has(name)) return;
        held.delete(name);
        centrifuge.removeSubscription(h.sub);
        h.li.remove();
        deny(h.ch);
      });
      placeholder(channelsEl, 'None.');
      if (!info.user) showLoggedOut();
      if (window.instantDemo) window.instantDemo.info = info;
    }).catch(function () {
      // The site is unreachable: leave the lists as they are.
    }).finally(function () {
      rechecking = null;
    });
    return rechecking;
  }

  function channelItem(ch) {
    var li = el('li', 'channel');
    li.dataset.channel = ch.name;
    li.dataset.level = ch.level;
    li.dataset.state = 'unsubscribed';
    li.append(el('code', '', ch.name), document.createTextNode(' '), levelBadge(ch), el('span', 'channel-state', 'unsubscribed'));
    return li;
  }

  function setChannelState(li, state, detail) {
    if (!li) return;
    li.dataset.state = state;
    var s = li.querySelector('.channel-state');
    s.textContent = state;
    s.title = detail || '';
  }

  function onPublication(channel, data) {
    if (page === 'home' && eventsEl) showEvent(channel, data || {});
    if (page === 'broadcast' && recentBody) addRow(channel, data || {}, '');
  }

  async function start() {
    setState('connecting');
    var info;
    try {
      info = await fetchChannels();
    } catch (err) {
      setState('disconnected', err.message);
      return;
    }

    centrifuge = new Centrifuge(info.websocket_url, {
      getToken: function () { return fetchToken('/instant/connection_token', {}); }
    });
    var connected = false;
    centrifuge.on('connecting', function (ctx) {
      connected = false;
      setState(everConnected ? 'reconnecting' : 'connecting', ctx.reason);
    });
    centrifuge.on('connected', function () {
      everConnected = connected = true;
      setState('connected');
    });
    centrifuge.on('disconnected', function (ctx) {
      var wasConnected = connected;
      connected = false;
      setState('disconnected', ctx.reason);
      if (wasConnected && reconnectCodes[ctx.code]) {
        // The visitor is no longer who the connection says (a logout in
        // another tab, an ended login, a role change). Ask the site again
        // which channels are granted, then connect with a fresh token, as
        // the visitor the session now says. Only a connection that was
        // up: one refused when connecting stays down, with no loop.
        setTimeout(function () {
          recheck().then(function () { centrifuge.connect(); });
        }, 500);
      }
    });

    if (channelsEl) channelsEl.textContent = '';
    (info.channels || []).forEach(function (ch) {
      var li = channelItem(ch);
      if (channelsEl) channelsEl.append(li);
      var opts = {};
      if (ch.name.charAt(0) === '$') {
        // A private channel: the site signs a subscription token, and
        // signs a new one when this one is about to expire.
        opts.getToken = function (ctx) {
          return fetchToken('/instant/subscription_token', { channel: ctx.channel }, recheck);
        };
      }
      var sub = centrifuge.newSubscription(ch.name, opts);
      held.set(ch.name, { ch: ch, sub: sub, li: li });
      sub.on('subscribing', function (ctx) { setChannelState(li, 'subscribing', ctx.reason); });
      sub.on('subscribed', function () { setChannelState(li, 'subscribed'); });
      sub.on('unsubscribed', function (ctx) { setChannelState(li, 'unsubscribed', ctx.reason); });
      sub.on('error', function (ctx) { setChannelState(li, li.dataset.state, ctx.error && ctx.error.message); });
      sub.on('publication', function (ctx) { onPublication(ctx.channel, ctx.data); });
      sub.subscribe();
    });
    placeholder(channelsEl, 'None.');
    centrifuge.connect();
    window.instantDemo = { centrifuge: centrifuge, info: info };
  }

  if (page === 'broadcast') setupForm();
  if (stateEl) start();
})();
