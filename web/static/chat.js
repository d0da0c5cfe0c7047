// Chat rooms: history on join, presence, typing indicators.
(function () {
  'use strict';
  var D = window.HeraldDemo;
  var room = D.room('demo');
  var channel = 'chat:' + room;
  var name = D.name;

  var list = document.getElementById('messages');
  var typingEl = document.getElementById('typing');
  var presenceEl = document.getElementById('presence');
  var presenceCount = document.getElementById('presence-count');
  var presenceNote = document.getElementById('presence-note');
  var statusEl = document.getElementById('chat-status');
  var form = document.getElementById('composer');
  var input = document.getElementById('text');
  var sendBtn = document.getElementById('send');

  var stats = { room: room, channel: channel, messages: [], sent: 0, typing: [], presence: [], historyLoads: 0, notRecovered: 0 };
  window.demo.chat = stats;

  var sub = null;
  var epoch = null; // the stream generation the shown offsets count in
  var shown = new Set(); // offsets on screen, to drop history/live duplicates
  var clients = {}; // presence: client id -> user
  var typers = {}; // user -> time of their last typing message
  var lastTypingSent = 0;
  var TYPING_EVERY = 2000;
  var TYPING_SHOWN = 3000;

  document.getElementById('room-title').textContent = '#' + room;
  setupRooms();
  setupName();
  showEmpty();

  function status(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle('error-text', !!isError);
  }

  // Room links keep the forced transport, so switching rooms does not
  // silently change what is being tried.
  function setupRooms() {
    var nav = document.getElementById('rooms');
    if (!nav.querySelector('[data-room="' + room + '"]')) {
      nav.appendChild(D.el('a', { 'data-room': room, text: '#' + room }));
    }
    Array.prototype.forEach.call(nav.querySelectorAll('a[data-room]'), function (a) {
      var p = new URLSearchParams(location.search);
      p.set('room', a.getAttribute('data-room'));
      a.setAttribute('href', 'chat.html?' + p.toString());
      if (a.getAttribute('data-room') === room) a.setAttribute('aria-current', 'page');
    });
  }

  // A new name needs a new token and a new presence entry: reloading is
  // the simplest honest way to get both.
  function setupName() {
    var nameForm = document.getElementById('name-form');
    var nameInput = document.getElementById('name');
    nameInput.value = name;
    nameForm.addEventListener('submit', function (e) {
      e.preventDefault();
      var n = D.setName(nameInput.value);
      if (!n) {
        nameInput.value = name;
        return;
      }
      if (n === name) return;
      var p = new URLSearchParams(location.search);
      p.set('name', n);
      location.search = p.toString();
    });
  }

  function showEmpty() {
    if (!list.querySelector('.message') && !list.querySelector('.empty')) {
      list.appendChild(D.el('li', { class: 'notice empty', text: 'No messages yet. Say hi!' }));
    }
  }

  function nearBottom() {
    return list.scrollTop + list.clientHeight >= list.scrollHeight - 40;
  }

  function userOf(data) {
    return data && typeof data === 'object' && typeof data.user === 'string' && data.user ? data.user : 'server';
  }

  function refreshStats() {
    stats.messages = Array.prototype.map.call(list.querySelectorAll('.message'), function (m) {
      return Number(m.getAttribute('data-offset'));
    }).filter(function (o) { return o > 0; });
    if (sub && sub.state === 'subscribed') status(stats.messages.length + (stats.messages.length === 1 ? ' message' : ' messages') + ' · live');
  }

  // Starts the list over when the channel's history was lost (the epoch
  // changed): old offsets would collide with the new stream's.
  function resetList(why) {
    while (list.firstChild) list.removeChild(list.firstChild);
    shown.clear();
    list.appendChild(D.el('li', { class: 'notice', text: why }));
    refreshStats();
  }

  function render(pub, fromHistory) {
    var data = pub.data;
    if (data && typeof data === 'object' && data.typing) return;
    var offset = pub.offset || 0;
    if (offset > 0) {
      if (pub.epoch && epoch && pub.epoch !== epoch) resetList('The room’s history was reset on the server.');
      if (pub.epoch) epoch = pub.epoch;
      if (shown.has(offset)) return;
      shown.add(offset);
    }
    var user = userOf(data);
    var mine = user === name;
    delete typers[user];
    var stick = nearBottom() || (mine && !fromHistory);
    var empty = list.querySelector('.empty');
    if (empty) list.removeChild(empty);

    var time = new Date(pub.time || Date.now());
    var li = D.el('li', {
      class: 'message' + (mine ? ' mine' : '') + (user === 'server' ? ' server' : '') + (fromHistory ? ' history' : ''),
      'data-offset': offset,
      'data-user': user,
    },
    D.el('div', { class: 'meta' }, D.el('span', { class: 'user', text: user }),
      D.el('time', { datetime: time.toISOString(), text: time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) })),
    D.el('span', { class: 'text', text: D.dataText(data) }));

    // Keep stored messages in offset order: history arrives after live
    // ones, and a publish result can overtake the delivery before it.
    var after = null;
    if (offset > 0) {
      for (var n = list.lastElementChild; n; n = n.previousElementSibling) {
        var o = Number(n.getAttribute('data-offset'));
        if (n.classList.contains('message') && o > 0 && o < offset) { after = n; break; }
      }
      list.insertBefore(li, after ? after.nextSibling : list.querySelector('.message'));
    } else {
      list.appendChild(li);
    }
    refreshStats();
    renderTyping();
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function loadHistory() {
    return sub.history({ limit: 50, reverse: true }).then(function (r) {
      stats.historyLoads++;
      if (r.epoch && epoch && r.epoch !== epoch) resetList('The room’s history was reset on the server.');
      var pubs = r.publications.slice().reverse(); // oldest first
      pubs.forEach(function (p) { render(p, true); });
      list.scrollTop = list.scrollHeight;
      showEmpty();
      refreshStats();
    }, function (err) {
      status('could not load history: ' + D.errText(err), true);
    });
  }

  // Typing indicator: ephemeral, so it costs nothing in history and is
  // simply lost by anyone not connected right now.
  function renderTyping() {
    var now = Date.now();
    var who = Object.keys(typers).filter(function (u) { return now - typers[u] < TYPING_SHOWN; }).sort();
    Object.keys(typers).forEach(function (u) { if (who.indexOf(u) < 0) delete typers[u]; });
    stats.typing = who;
    var text = '';
    if (who.length === 1) text = who[0] + ' is typing…';
    else if (who.length === 2) text = who[0] + ' and ' + who[1] + ' are typing…';
    else if (who.length > 2) text = who.length + ' people are typing…';
    typingEl.textContent = text;
  }
  setInterval(renderTyping, 500);

  input.addEventListener('input', function () {
    var now = Date.now();
    if (!sub || !input.value.trim() || now - lastTypingSent < TYPING_EVERY) return;
    if (window.demo.client.state !== 'connected') return;
    lastTypingSent = now;
    sub.publish({ typing: true, user: name, tab: D.tab }, { ephemeral: true }).catch(function () {
      // A lost typing hint is harmless.
    });
  });

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text || !sub) return;
    sendBtn.disabled = true;
    sub.publish({ text: text, user: name }).then(function (r) {
      stats.sent++;
      input.value = '';
      lastTypingSent = 0;
      // Shown at once from the publish result; the delivery that follows
      // is dropped as a duplicate. On polling that saves up to a poll.
      if (r.offset > 0) render({ channel: channel, offset: r.offset, epoch: r.epoch, data: { text: text, user: name }, time: Date.now() }, false);
    }, function (err) {
      status('not sent: ' + D.errText(err), true);
    }).then(function () {
      sendBtn.disabled = false;
      input.focus();
    });
  });

  // Presence: a client's user is its token's user; anonymous clients have
  // none, so their client id stands in.
  function presenceUser(info) {
    return (info && (info.user || info.client)) || 'unknown';
  }

  function renderPresence() {
    var users = {};
    Object.keys(clients).forEach(function (id) { users[clients[id]] = true; });
    var me = window.demo.client && window.demo.client.clientId;
    var names = Object.keys(users).sort();
    while (presenceEl.firstChild) presenceEl.removeChild(presenceEl.firstChild);
    names.forEach(function (u) {
      var self = u === name || (me && u === me);
      presenceEl.appendChild(D.el('li', { 'data-user': u, class: self ? 'me' : null }, u, self ? ' (you)' : null));
    });
    var t = window.demo.client && window.demo.client.transport;
    presenceNote.hidden = !(t === 'longpoll' || t === 'shortpoll');
    presenceCount.textContent = String(names.length);
    stats.presence = names;
  }

  function refreshPresence() {
    if (!sub || sub.state !== 'subscribed') return;
    sub.presence().then(function (r) {
      clients = {};
      Object.keys(r.clients).forEach(function (id) { clients[id] = presenceUser(r.clients[id]); });
      renderPresence();
    }, function () { /* presence is best effort; the next refresh retries */ });
  }
  // Join/leave keep the list current on WebSocket and SSE; polling gets
  // neither, so refresh now and then.
  setInterval(refreshPresence, 15000);

  D.start().then(function (client) {
    sub = client.newSubscription(channel);
    var first = true;
    sub.on('subscribed', function (e) {
      if (e.wasRecovering && !e.recovered) {
        stats.notRecovered++;
        list.appendChild(D.el('li', { class: 'notice', text: 'Messages missed while away could not be recovered; reloading history.' }));
      }
      // Recovered resumes bring every missed message themselves.
      if (first || (e.wasRecovering && !e.recovered)) {
        first = false;
        loadHistory();
      } else {
        refreshStats();
      }
      refreshPresence();
    });
    sub.on('subscribing', function () { status(first ? 'subscribing…' : 'reconnecting…'); });
    sub.on('unsubscribed', function (e) {
      if (e.error) status('subscription ended: ' + D.errText(e.error), true);
    });
    sub.on('error', function (e) { status('subscription error: ' + D.errText(e.error), true); });
    sub.on('publication', function (pub) {
      var data = pub.data;
      if (data && typeof data === 'object' && data.typing) {
        if (!D.isOwn(data)) {
          typers[userOf(data)] = Date.now();
          renderTyping();
        }
        return;
      }
      render(pub, false);
    });
    sub.on('join', function (e) {
      clients[e.info.client] = presenceUser(e.info);
      renderPresence();
    });
    sub.on('leave', function (e) {
      delete clients[e.info.client];
      renderPresence();
    });
    client.on('transport', renderPresence);
    sub.subscribe();
    status('subscribing…');
    D.connect();
  }).catch(function (err) {
    status('cannot start', true);
    D.fail(err);
  });
})();
