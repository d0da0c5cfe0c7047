// Collaborative cursors: ephemeral pointer positions and stored stamps.
(function () {
  'use strict';
  var D = window.HeraldDemo;
  var room = D.room('demo');
  var channel = 'cursors:' + room;
  var name = D.name;
  var color = D.colorFor(name);
  var MIN_INTERVAL = 50; // ms between cursor publishes: at most 20 a second
  var CURSOR_TTL = 5000;
  var SVG = 'http://www.w3.org/2000/svg';

  var wrap = document.getElementById('board-wrap');
  var canvas = document.getElementById('board');
  var presenceCount = document.getElementById('presence-count');
  var stampCount = document.getElementById('stamp-count');
  var note = document.getElementById('cursor-note');

  var stats = { room: room, channel: channel, stamps: 0, peers: {}, sent: 0, presence: 0 };
  window.demo.cursors = stats;

  var sub = null;
  var stamps = []; // drawn, in order, kept to redraw on resize
  var seen = new Set(); // stamp offsets already drawn
  var epoch = null;
  var cursorEls = {}; // user -> element
  var clients = {}; // presence: client id -> user

  document.getElementById('my-name').textContent = name;
  document.getElementById('my-swatch').style.background = color;

  // Board coordinates are fractions of its size, so screens of any size
  // agree on where things are (the board keeps one aspect ratio).
  function norm(e) {
    var r = wrap.getBoundingClientRect();
    var clamp = function (v) { return Math.min(1, Math.max(0, v)); };
    return { x: clamp((e.clientX - r.left) / r.width), y: clamp((e.clientY - r.top) / r.height) };
  }

  function round(v) {
    return Math.round(v * 10000) / 10000;
  }

  // Drawing

  function fit() {
    var dpr = window.devicePixelRatio || 1;
    var w = Math.round(wrap.clientWidth * dpr);
    var h = Math.round(wrap.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    var ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, w, h);
    stamps.forEach(drawStamp);
  }
  window.addEventListener('resize', fit);

  function drawStamp(s) {
    var ctx = canvas.getContext('2d');
    var dpr = window.devicePixelRatio || 1;
    var r = 9 * dpr;
    ctx.beginPath();
    ctx.arc(s.x * canvas.width, s.y * canvas.height, r, 0, Math.PI * 2);
    ctx.fillStyle = s.color;
    ctx.globalAlpha = 0.85;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = '#ffffff';
    ctx.stroke();
  }

  function validColor(c) {
    return typeof c === 'string' && /^#[0-9a-fA-F]{3,8}$/.test(c) ? c : '#667085';
  }

  function addStamp(data, offset, pubEpoch) {
    if (typeof data.x !== 'number' || typeof data.y !== 'number') return;
    if (pubEpoch && epoch && pubEpoch !== epoch) clearView(true);
    if (pubEpoch) epoch = pubEpoch;
    if (offset > 0) {
      if (seen.has(offset)) return;
      seen.add(offset);
    }
    var s = { x: data.x, y: data.y, color: validColor(data.color), user: String(data.user || ''), offset: offset };
    stamps.push(s);
    drawStamp(s);
    stats.stamps = stamps.length;
    stampCount.textContent = String(stats.stamps);
  }

  // forget: the channel's history was lost, so old offsets mean nothing.
  function clearView(forget) {
    stamps = [];
    if (forget) seen.clear();
    stats.stamps = 0;
    stampCount.textContent = '0';
    fit();
  }
  document.getElementById('clear').addEventListener('click', function () { clearView(false); });

  // Others' cursors

  function cursorEl(user, c) {
    var el = cursorEls[user];
    if (!el) {
      var svg = document.createElementNS(SVG, 'svg');
      svg.setAttribute('viewBox', '0 0 24 24');
      var path = document.createElementNS(SVG, 'path');
      path.setAttribute('d', 'M3 2l7.5 19 2.6-7.9L21 10.5z');
      path.setAttribute('fill', 'currentColor');
      path.setAttribute('stroke', '#fff');
      path.setAttribute('stroke-width', '1.5');
      path.setAttribute('stroke-linejoin', 'round');
      svg.appendChild(path);
      el = D.el('div', { class: 'cursor', 'data-user': user }, svg, D.el('span', { class: 'cursor-name', text: user }));
      wrap.appendChild(el);
      cursorEls[user] = el;
    }
    el.style.color = c;
    el.lastChild.style.background = c;
    return el;
  }

  function moveCursor(data) {
    var user = String(data.user || 'someone');
    if (typeof data.x !== 'number' || typeof data.y !== 'number') return;
    var c = validColor(data.color);
    var el = cursorEl(user, c);
    el.style.left = (Math.min(1, Math.max(0, data.x)) * 100) + '%';
    el.style.top = (Math.min(1, Math.max(0, data.y)) * 100) + '%';
    stats.peers[user] = { x: data.x, y: data.y, color: c, seen: Date.now() };
  }

  function removeCursor(user) {
    var el = cursorEls[user];
    if (el && el.parentNode) el.parentNode.removeChild(el);
    delete cursorEls[user];
    delete stats.peers[user];
  }

  setInterval(function () {
    var now = Date.now();
    Object.keys(stats.peers).forEach(function (u) {
      if (now - stats.peers[u].seen > CURSOR_TTL) removeCursor(u);
    });
  }, 500);

  // Publishing: cursor moves are throttled with a trailing send, so the
  // last position always goes out even when the pointer stops mid-window.

  var pending = null;
  var lastSent = 0;
  var timer = null;

  function canPublish() {
    return sub && window.demo.client && window.demo.client.state === 'connected';
  }

  function flush() {
    timer = null;
    if (!pending || !canPublish()) return;
    var p = pending;
    pending = null;
    lastSent = Date.now();
    stats.sent++;
    sub.publish({ type: 'cursor', x: round(p.x), y: round(p.y), user: name, color: color, tab: D.tab }, { ephemeral: true })
      .catch(function () { /* a lost cursor position is replaced by the next */ });
  }

  wrap.addEventListener('pointermove', function (e) {
    pending = norm(e);
    if (timer) return;
    timer = setTimeout(flush, Math.max(0, lastSent + MIN_INTERVAL - Date.now()));
  });

  wrap.addEventListener('pointerleave', function () {
    pending = null;
    if (!canPublish()) return;
    sub.publish({ type: 'gone', user: name, tab: D.tab }, { ephemeral: true }).catch(function () {});
  });

  wrap.addEventListener('click', function (e) {
    if (!sub) return;
    var p = norm(e);
    var data = { type: 'stamp', x: round(p.x), y: round(p.y), user: name, color: color };
    sub.publish(data).then(function (r) {
      // Drawn from the publish result at once; the delivery that follows
      // is dropped by its offset.
      if (r.offset > 0) addStamp(data, r.offset, r.epoch);
    }, function (err) {
      D.log(null, 'stamp not stored: ' + D.errText(err), 'error');
    });
  });

  function onPublication(pub) {
    var data = pub.data;
    if (!data || typeof data !== 'object') return;
    if (data.type === 'stamp') {
      addStamp(data, pub.offset, pub.epoch);
      return;
    }
    if (D.isOwn(data)) return;
    if (data.type === 'cursor') moveCursor(data);
    else if (data.type === 'gone' && data.user) removeCursor(String(data.user));
  }

  function loadHistory() {
    sub.history({ limit: 200, reverse: true }).then(function (r) {
      if (r.epoch && epoch && r.epoch !== epoch) clearView(true);
      r.publications.slice().reverse().forEach(function (p) {
        if (p.data && typeof p.data === 'object' && p.data.type === 'stamp') addStamp(p.data, p.offset, p.epoch || r.epoch);
      });
    }, function (err) {
      D.log(null, 'history: ' + D.errText(err), 'error');
    });
  }

  // Presence: counted per client, as each tab has its own cursor.
  function showPresence() {
    stats.presence = Object.keys(clients).length;
    presenceCount.textContent = String(stats.presence);
  }

  function refreshPresence() {
    if (!sub || sub.state !== 'subscribed') return;
    sub.presence().then(function (r) {
      clients = {};
      Object.keys(r.clients).forEach(function (id) { clients[id] = r.clients[id].user || id; });
      showPresence();
    }, function () { /* best effort */ });
  }
  setInterval(refreshPresence, 15000);

  fit();

  D.start().then(function (client) {
    sub = client.newSubscription(channel);
    var first = true;
    sub.on('subscribed', function (e) {
      if (first || (e.wasRecovering && !e.recovered)) loadHistory();
      first = false;
      refreshPresence();
    });
    sub.on('publication', onPublication);
    sub.on('join', function (e) {
      clients[e.info.client] = e.info.user || e.info.client;
      showPresence();
    });
    sub.on('leave', function (e) {
      delete clients[e.info.client];
      if (e.info.user) removeCursor(e.info.user);
      showPresence();
    });
    client.on('transport', function (e) {
      note.hidden = !(e.transport === 'longpoll' || e.transport === 'shortpoll');
    });
    sub.subscribe();
    D.connect();
  }).catch(D.fail);
})();
