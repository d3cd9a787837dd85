// The demo's browser side, plain JavaScript with no build step.
//
// It asks the site which channels this visitor may read (GET
// /instant/channels), connects to Centrifugo with a connection token from
// the site, subscribes to each channel (a "$" channel with a subscription
// token from the site, fetched again whenever Centrifugo wants a fresh one)
// and shows every event as it arrives.
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
  // 403) tells centrifuge-js to stop asking; other failures make it retry.
  async function fetchToken(path, body) {
    var res = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(body || {})
    });
    if (res.status === 401 || res.status === 403) {
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

  function showEvent(channel, ev) {
    var id = String(ev.id || '');
    var existing = id && document.getElementById('event-' + id);
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
    if (id) li.id = 'event-' + id;
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

  function channelItem(ch) {
    var li = el('li', 'channel');
    li.dataset.channel = ch.name;
    li.dataset.level = ch.level;
    li.dataset.state = 'unsubscribed';
    var badge = el('span', 'badge level-' + ch.level, ch.level + (ch.group ? ': ' + ch.group : ''));
    li.append(el('code', '', ch.name), document.createTextNode(' '), badge, el('span', 'channel-state', 'unsubscribed'));
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
      var res = await fetch('/instant/channels', { credentials: 'same-origin', headers: { 'Accept': 'application/json' } });
      if (!res.ok) throw new Error('/instant/channels answered ' + res.status);
      info = await res.json();
    } catch (err) {
      setState('disconnected', err.message);
      return;
    }

    var centrifuge = new Centrifuge(info.websocket_url, {
      getToken: function () { return fetchToken('/instant/connection_token', {}); }
    });
    centrifuge.on('connecting', function (ctx) {
      setState(everConnected ? 'reconnecting' : 'connecting', ctx.reason);
    });
    centrifuge.on('connected', function () {
      everConnected = true;
      setState('connected');
    });
    centrifuge.on('disconnected', function (ctx) {
      setState('disconnected', ctx.reason);
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
          return fetchToken('/instant/subscription_token', { channel: ctx.channel });
        };
      }
      var sub = centrifuge.newSubscription(ch.name, opts);
      sub.on('subscribing', function (ctx) { setChannelState(li, 'subscribing', ctx.reason); });
      sub.on('subscribed', function () { setChannelState(li, 'subscribed'); });
      sub.on('unsubscribed', function (ctx) { setChannelState(li, 'unsubscribed', ctx.reason); });
      sub.on('error', function (ctx) { setChannelState(li, li.dataset.state, ctx.error && ctx.error.message); });
      sub.on('publication', function (ctx) { onPublication(ctx.channel, ctx.data); });
      sub.subscribe();
    });
    if (channelsEl && !channelsEl.children.length) {
      channelsEl.append(el('li', 'muted placeholder', 'None.'));
    }
    centrifuge.connect();
    window.instantDemo = { centrifuge: centrifuge, info: info };
  }

  if (page === 'broadcast') setupForm();
  if (stateEl) start();
})();
