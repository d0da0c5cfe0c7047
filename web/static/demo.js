// Shared by every demo page: the page's one Herald client, the visitor's
// nickname and token, the header's transport badge and small DOM helpers.
// Pages read `window.HeraldDemo` and expose their state on `window.demo`,
// which browser tests read.
(function () {
  'use strict';

  var TRANSPORTS = ['websocket', 'sse', 'longpoll', 'shortpoll'];
  var params = new URLSearchParams(location.search);

  // Storage can throw (private modes, disabled cookies): a demo must still run.
  function stored(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function store(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { /* ignore */ }
  }

  // Names become user ids in tokens, so they follow the server's rule for
  // demo users: ASCII letters, digits, '.', '_', '-', starting with a
  // letter or digit.
  function cleanName(s) {
    return String(s || '').trim().replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+|-+$/g, '').slice(0, 24);
  }

  function randomName() {
    return 'guest-' + String(1000 + Math.floor(Math.random() * 9000));
  }

  var name = cleanName(params.get('name')) || cleanName(stored('herald-demo-name')) || randomName();
  store('herald-demo-name', name);

  // A per-page id, so that two tabs sharing a nickname still see each
  // other's ephemeral messages (cursors, typing) while ignoring their own.
  var tab = Math.random().toString(36).slice(2, 10);

  var demo = { client: null, name: name, tab: tab, ready: false, anonymous: null, forced: null, events: [] };
  window.demo = demo;

  // el('li', {class: 'x', 'data-user': u}, 'text', child): DOM building
  // without HTML strings, so data never becomes markup.
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'text') node.textContent = String(v);
        else node.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clock(d) {
    d = d || new Date();
    var p = function (n, w) { return String(n).padStart(w || 2, '0'); };
    return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3);
  }

  // Appends a timestamped line to a list, newest at the bottom, keeping
  // the list short so a long-running tab stays light.
  function log(list, text, kind, max) {
    demo.events.push({ time: Date.now(), kind: kind || 'info', text: text });
    if (demo.events.length > 500) demo.events.shift();
    if (!list) return;
    var stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    list.appendChild(el('li', { class: kind || null }, el('span', { class: 'time', text: clock() }), text));
    while (list.children.length > (max || 200)) list.removeChild(list.firstChild);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  // Publication data may be any JSON: show its text when it has one.
  function dataText(data) {
    if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
    if (typeof data === 'string') return data;
    try { return JSON.stringify(data); } catch (e) { return String(data); }
  }

  // A stable colour per name, so everyone sees the same colour for a user.
  var PALETTE = ['#e5484d', '#f76b15', '#d6a100', '#30a46c', '#12a594', '#0090ff', '#3e63dd', '#8e4ec6', '#d6409f', '#978365'];
  function colorFor(s) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }

  function errText(err) {
    return (err && (err.message || err.name)) || String(err);
  }

  function fetchToken(timeoutMs) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, timeoutMs || 5000);
    return fetch('/demo/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: name }),
      cache: 'no-store',
      signal: ctl.signal,
    }).then(function (res) {
      if (!res.ok) throw new Error('/demo/token: HTTP ' + res.status);
      return res.json();
    }).then(function (body) {
      if (!body || typeof body.token !== 'string' || !body.token) throw new Error('/demo/token: no token in answer');
      return body.token;
    }).finally(function () { clearTimeout(timer); });
  }

  function badgeUpdate() {
    var badge = document.getElementById('transport-badge');
    var c = demo.client;
    if (!badge || !c) return;
    badge.textContent = (c.transport || 'none') + ' · ' + c.state;
    badge.setAttribute('data-state', c.state);
    badge.setAttribute('data-transport', c.transport || '');
    badge.title = c.forcedTransport ? 'transport forced to ' + c.forcedTransport : 'transport chosen automatically';
  }

  // start() makes and connects the page's client. The token endpoint is
  // probed once first: a server without it gets an anonymous client rather
  // than one that keeps failing to fetch tokens.
  function start(opts) {
    opts = opts || {};
    var wanted = params.get('transport') || opts.defaultTransport || null;
    var forced = TRANSPORTS.indexOf(wanted) >= 0 ? wanted : null;
    var badge = document.getElementById('transport-badge');
    if (typeof Herald === 'undefined' || !Herald.Client) {
      if (badge) {
        badge.textContent = 'SDK not loaded';
        badge.setAttribute('data-state', 'disconnected');
      }
      return Promise.reject(new Error('the Herald SDK (/sdk/herald.min.js) did not load'));
    }
    if (badge) {
      badge.textContent = 'starting…';
      badge.setAttribute('data-state', 'connecting');
    }
    return fetchToken(3000).then(function (t) { return t; }, function () { return null; }).then(function (first) {
      var options = {};
      if (first) {
        options.token = first;
        options.getToken = function () { return fetchToken(); };
      }
      var client = new Herald.Client(options);
      demo.client = client;
      demo.anonymous = !first;
      // Forcing through setTransport rather than the transports option
      // keeps the full order, so "auto" can later go back to it.
      if (forced) {
        try {
          client.setTransport(forced);
          demo.forced = forced;
        } catch (err) {
          log(null, 'cannot force ' + forced + ': ' + errText(err), 'error');
        }
      }
      ['state', 'transport', 'connected', 'connecting', 'disconnected'].forEach(function (ev) {
        client.on(ev, badgeUpdate);
      });
      client.on('error', function (e) { log(null, e.type + ' error' + (e.transport ? ' on ' + e.transport : '') + ': ' + errText(e.error), 'error'); });
      // Leaving promptly lets the others' presence lists drop this tab
      // now rather than at the presence timeout; bfcache restores reconnect.
      window.addEventListener('pagehide', function () { client.disconnect(); });
      window.addEventListener('pageshow', function (e) { if (e.persisted) client.connect(); });
      badgeUpdate();
      demo.ready = true;
      return client;
    });
  }

  // Connects after the page has registered its listeners, so the first
  // events reach them.
  function connect() {
    if (!demo.client) return;
    demo.client.connect();
    badgeUpdate();
  }

  // Shows why a page cannot run, at the top of its main content.
  function fail(err) {
    var main = document.querySelector('main');
    var box = el('div', { class: 'card error-banner', role: 'alert' },
      el('strong', { text: 'The demo cannot start: ' }), errText(err));
    if (main) main.insertBefore(box, main.firstChild);
    log(null, 'fatal: ' + errText(err), 'error');
  }

  window.HeraldDemo = {
    fail: fail,
    TRANSPORTS: TRANSPORTS,
    params: params,
    name: name,
    tab: tab,
    cleanName: cleanName,
    setName: function (n) {
      n = cleanName(n);
      if (n) store('herald-demo-name', n);
      return n;
    },
    start: start,
    connect: connect,
    el: el,
    log: log,
    clock: clock,
    dataText: dataText,
    colorFor: colorFor,
    errText: errText,
    badgeUpdate: badgeUpdate,
    // A message is our own if this page sent it; messages without a tab
    // id (other clients, the server) are compared by name.
    isOwn: function (data) {
      if (!data || typeof data !== 'object') return false;
      if (typeof data.tab === 'string') return data.tab === tab;
      return data.user === name;
    },
    // A room name from the URL that makes a valid channel, else the default.
    room: function (def) {
      var r = params.get('room') || '';
      return /^[A-Za-z0-9_.-]{1,64}$/.test(r) ? r : def;
    },
  };
})();
