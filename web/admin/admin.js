// Herald admin UI: logs in for an admin session token, calls the admin API
// with it, and connects to Herald with the same token, which subscribes the
// connection to the stats channel every node publishes to each second: the
// overview is drawn from those publications as they arrive.
(function () {
  'use strict';

  var TOKEN_KEY = 'herald-admin-token';
  var STATS_CHANNEL = '_admin:stats';
  var POINTS = 120; // chart width in seconds
  var NODE_TTL = 5000; // a node silent this long (ms) leaves the overview
  var HISTORY_PAGE = 20;

  // Exposed for tests and the curious: what the overview is drawn from.
  var state = {
    token: null,
    client: null,
    snapshots: 0,
    nodes: {}, // node id -> {snap, prev, rateIn, rateOut, seen}
    series: [], // {t: second, in, out}
    rateIn: 0,
    rateOut: 0,
  };
  window.heraldAdmin = state;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  function fill(tbody, rows, emptyText, cols) {
    tbody.replaceChildren();
    if (rows.length === 0) {
      tbody.append(el('tr', {}, el('td', { colspan: String(cols), class: 'muted', text: emptyText })));
      return;
    }
    rows.forEach(function (r) { tbody.append(r); });
  }

  function fmtRate(x) { return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2).replace(/\.?0+$/, '') || '0'; }

  function fmtUptime(s) {
    if (s < 120) return s + 's';
    if (s < 7200) return Math.floor(s / 60) + 'm';
    if (s < 172800) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }

  function errText(e) { return e && e.message ? e.message : String(e); }

  // --- session ---

  // tokenExpiry reads the exp claim (ms), to stop using a token once it
  // is past: the server would refuse it anyway.
  function tokenExpiry(token) {
    try {
      var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part)).exp * 1000;
    } catch (e) {
      return 0;
    }
  }

  // A session lasts an hour; it is renewed ahead of its expiry, so that an
  // open UI stays logged in, and ends only when a renewal is refused.
  var RENEW_AHEAD = 5 * 60 * 1000;
  var RENEW_RETRY = 30 * 1000;
  var renewTimer = null;

  function setToken(token) {
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    clearTimeout(renewTimer);
    var exp = tokenExpiry(token);
    var ahead = Math.min(RENEW_AHEAD, (exp - Date.now()) / 5);
    renewTimer = setTimeout(renew, Math.max(0, exp - ahead - Date.now()));
  }

  function renew() {
    var token = state.token;
    if (!token) return Promise.resolve();
    return fetch('/admin/refresh', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + token },
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (body) {
        if (state.token !== token) return;
        if (res.ok && body && body.token) {
          setToken(body.token);
        } else if (res.status === 401) {
          logout('Your session ended: log in again.');
        } else {
          throw new Error('HTTP ' + res.status);
        }
      });
    }).catch(function () {
      // A network failure: try again while the session lasts.
      if (state.token === token && tokenExpiry(token) - Date.now() > RENEW_RETRY) {
        clearTimeout(renewTimer);
        renewTimer = setTimeout(renew, RENEW_RETRY);
      }
    });
  }
  state.renew = renew;

  function loggedIn(token) {
    setToken(token);
    $('login-view').hidden = true;
    $('tabs').hidden = false;
    $('logout').hidden = false;
    show('overview');
    connect();
    call('nodes').then(function (r) { renderNodes(r.nodes || []); }).catch(function () {});
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(renewTimer);
    state.token = null;
    if (state.client) {
      state.client.disconnect();
      state.client = null;
    }
    document.querySelectorAll('.view').forEach(function (v) { v.hidden = true; });
    $('tabs').hidden = true;
    $('logout').hidden = true;
    $('login-view').hidden = false;
    $('login-error').textContent = message || '';
    setLive(false);
  }

  $('login-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    $('login-error').textContent = '';
    fetch('/admin/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: $('password').value }),
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (body) {
        if (!res.ok || !body || !body.token) {
          throw new Error(body && body.error ? body.error.message : 'HTTP ' + res.status);
        }
        $('password').value = '';
        loggedIn(body.token);
      });
    }).catch(function (e) { $('login-error').textContent = errText(e); });
  });

  $('logout').addEventListener('click', function () { logout(''); });

  // call runs an admin API method; a 401 ends the session.
  function call(method, body) {
    return fetch('/admin/api/' + method, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + state.token },
      body: JSON.stringify(body || {}),
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (json) {
        if (res.status === 401) {
          logout('Your session ended: log in again.');
        }
        if (!res.ok) {
          var e = json && json.error;
          throw new Error(e ? e.message + ' (' + e.code + ')' : 'HTTP ' + res.status);
        }
        return json;
      });
    });
  }

  // --- live stats through Herald ---

  function setLive(on) {
    var b = $('live');
    b.dataset.state = on ? 'on' : 'off';
    b.textContent = on ? 'live' : 'offline';
  }

  function connect() {
    if (typeof Herald === 'undefined' || !Herald.Client) {
      $('live').textContent = 'SDK missing';
      return;
    }
    var client = new Herald.Client({
      token: state.token,
      getToken: function () {
        if (!state.token || tokenExpiry(state.token) <= Date.now()) {
          logout('Your session ended: log in again.');
          return Promise.reject(new Error('admin session expired'));
        }
        return Promise.resolve(state.token);
      },
    });
    client.on('connected', function () { setLive(true); });
    client.on('disconnected', function () { setLive(false); });
    client.on('connecting', function () { setLive(false); });
    client.on('publication', function (p) {
      if (p.channel === STATS_CHANNEL && p.data && typeof p.data === 'object') onSnapshot(p.data);
    });
    state.client = client;
    client.connect();
  }

  function onSnapshot(s) {
    state.snapshots++;
    var n = state.nodes[s.node];
    var now = Date.now();
    if (!n) n = state.nodes[s.node] = { rateIn: 0, rateOut: 0 };
    if (n.snap && s.time > n.snap.time) {
      var dt = (s.time - n.snap.time) / 1000;
      n.rateIn = Math.max(0, s.publications - n.snap.publications) / dt;
      n.rateOut = Math.max(0, s.deliveries - n.snap.deliveries) / dt;
    }
    n.snap = s;
    n.seen = now;
    var rateIn = 0, rateOut = 0, live = [];
    Object.keys(state.nodes).forEach(function (id) {
      var x = state.nodes[id];
      if (now - x.seen > NODE_TTL) {
        delete state.nodes[id];
        return;
      }
      rateIn += x.rateIn;
      rateOut += x.rateOut;
      live.push(x.snap);
    });
    state.rateIn = rateIn;
    state.rateOut = rateOut;
    var second = Math.floor(s.time / 1000);
    var last = state.series[state.series.length - 1];
    if (last && last.t === second) {
      last.in = rateIn;
      last.out = rateOut;
    } else {
      state.series.push({ t: second, in: rateIn, out: rateOut });
      if (state.series.length > POINTS) state.series.shift();
    }
    renderOverview(live, s);
  }

  function renderOverview(live, latest) {
    var sum = function (k) { return live.reduce(function (a, x) { return a + (x[k] || 0); }, 0); };
    $('s-nodes').textContent = String((latest.nodes || []).length || live.length);
    $('s-clients').textContent = String(sum('num_clients'));
    $('s-users').textContent = String(sum('num_users'));
    $('s-channels').textContent = String(sum('num_channels'));
    $('s-in').textContent = fmtRate(state.rateIn);
    $('s-out').textContent = fmtRate(state.rateOut);
    var transports = {};
    live.forEach(function (x) {
      Object.keys(x.connections || {}).forEach(function (t) { transports[t] = (transports[t] || 0) + x.connections[t]; });
    });
    fill($('transports'), Object.keys(transports).sort().map(function (t) {
      return el('tr', {}, el('td', { text: t }), el('td', { class: 'num', text: String(transports[t]) }));
    }), 'no connections', 2);
    renderNodes(latest.nodes || []);
    drawChart();
  }

  function renderNodes(nodes) {
    fill($('nodes'), nodes.map(function (n) {
      return el('tr', {},
        el('td', { title: n.id }, el('span', { text: n.name || n.id }), el('br'), el('code', { class: 'muted', text: n.id.slice(0, 8) + '…' })),
        el('td', { text: n.version }),
        el('td', { class: 'num', text: String(n.num_clients) }),
        el('td', { class: 'num', text: String(n.num_users) }),
        el('td', { class: 'num', text: String(n.num_channels) }),
        el('td', { class: 'num', text: fmtUptime(n.uptime_seconds) }));
    }), 'no nodes', 6);
  }

  function drawChart() {
    var W = 600, H = 160, pad = 8;
    var pts = state.series;
    var max = 1;
    pts.forEach(function (p) { max = Math.max(max, p.in, p.out); });
    var grid = $('grid');
    grid.replaceChildren();
    for (var i = 1; i < 4; i++) {
      var y = pad + ((H - 2 * pad) * i) / 4;
      grid.append(svg('line', { x1: 0, x2: W, y1: y, y2: y }));
    }
    var path = function (key) {
      var start = POINTS - pts.length;
      return pts.map(function (p, j) {
        var x = ((start + j) / (POINTS - 1)) * W;
        var y = H - pad - (p[key] / max) * (H - 2 * pad);
        return (j === 0 ? 'M' : 'L') + x.toFixed(1) + ' ' + y.toFixed(1);
      }).join(' ');
    };
    $('line-in').setAttribute('d', path('in'));
    $('line-out').setAttribute('d', path('out'));
    $('chart').dataset.points = String(pts.length);
    $('chart-max').textContent = 'max ' + fmtRate(max) + '/s';
  }

  // --- tabs ---

  function show(tab) {
    document.querySelectorAll('.view').forEach(function (v) { v.hidden = v.id !== tab; });
    document.querySelectorAll('#tabs button').forEach(function (b) {
      if (b.dataset.tab === tab) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    });
    if (tab === 'channels') loadChannels();
    if (tab === 'connections') loadConnections();
  }

  document.querySelectorAll('#tabs button').forEach(function (b) {
    b.addEventListener('click', function () { show(b.dataset.tab); });
  });

  // --- channels ---

  var current = { channel: null, oldest: null, epoch: null };

  function loadChannels() {
    call('channels', { pattern: $('pattern').value.trim() }).then(function (r) {
      var names = Object.keys(r.channels || {}).sort();
      fill($('channel-list'), names.map(function (name) {
        var c = r.channels[name];
        var row = el('tr', { class: 'pick', 'data-channel': name, tabindex: '0' },
          el('td', {}, el('code', { text: name })),
          el('td', { class: 'num', text: String(c.num_subscribers) }),
          el('td', { class: 'num', text: String(c.num_nodes) }));
        if (name === current.channel) row.setAttribute('aria-selected', 'true');
        var open = function () { openChannel(name); };
        row.addEventListener('click', open);
        row.addEventListener('keydown', function (e) { if (e.key === 'Enter') open(); });
        return row;
      }), 'no channel has subscribers', 3);
      var notes = [];
      if (r.missing_nodes && r.missing_nodes.length) notes.push('no answer from ' + r.missing_nodes.join(', '));
      if (r.truncated) notes.push('some nodes listed only part of their channels');
      $('channels-note').textContent = notes.join('; ');
    }).catch(function (e) { $('channels-note').textContent = errText(e); });
  }

  $('channels-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    loadChannels();
  });

  $('ch-open').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var name = $('ch-input').value.trim();
    if (name) openChannel(name);
  });

  function openChannel(name) {
    current = { channel: name, oldest: null, epoch: null };
    $('ch-name').textContent = name;
    document.querySelectorAll('#channel-list tr').forEach(function (r) {
      if (r.dataset.channel === name) r.setAttribute('aria-selected', 'true');
      else r.removeAttribute('aria-selected');
    });
    $('history').replaceChildren();
    $('history-note').textContent = '';
    $('history-more').hidden = true;
    call('presence', { channel: name }).then(function (r) {
      var ids = Object.keys(r.clients || {}).sort();
      fill($('presence'), ids.map(function (id) {
        var c = r.clients[id];
        return el('tr', {}, el('td', {}, el('code', { text: id })), el('td', { text: c.user || '(anonymous)' }));
      }), 'nobody present', 2);
      $('presence-note').textContent = '';
    }).catch(function (e) {
      $('presence').replaceChildren();
      $('presence-note').textContent = errText(e);
    });
    loadHistory();
  }

  function loadHistory() {
    var name = current.channel;
    var req = { channel: name, limit: HISTORY_PAGE, reverse: true };
    if (current.oldest !== null) req.since = { epoch: current.epoch, offset: current.oldest };
    call('history', req).then(function (r) {
      if (name !== current.channel) return;
      var pubs = r.publications || [];
      if (current.epoch === null) current.epoch = r.epoch;
      pubs.forEach(function (p) {
        $('history').append(el('li', { 'data-offset': String(p.offset) },
          el('span', { class: 'off', text: '#' + p.offset }),
          el('span', { text: JSON.stringify(p.data) })));
      });
      if (pubs.length) current.oldest = pubs[pubs.length - 1].offset;
      $('history-more').hidden = pubs.length < HISTORY_PAGE || current.oldest <= 1;
      if (!$('history').children.length) $('history-note').textContent = 'no stored publications';
    }).catch(function (e) { $('history-note').textContent = errText(e); });
  }

  $('history-more').addEventListener('click', loadHistory);

  // --- publish ---

  $('publish-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var out = $('pub-result');
    var data;
    try {
      data = JSON.parse($('pub-data').value);
    } catch (e) {
      out.textContent = 'data is not JSON: ' + errText(e);
      out.className = 'error';
      return;
    }
    var channel = $('pub-channel').value.trim();
    call('publish', { channel: channel, data: data, ephemeral: $('pub-ephemeral').checked }).then(function (r) {
      out.className = '';
      out.textContent = r.offset ? 'published to ' + channel + ' at offset ' + r.offset : 'published to ' + channel + ' (ephemeral)';
      out.dataset.offset = String(r.offset || 0);
    }).catch(function (e) {
      out.className = 'error';
      out.textContent = errText(e);
    });
  });

  // --- connections ---

  // loadConnections lists the connections the filter matches, all of them
  // when it is empty; each node lists a bounded number of them.
  function loadConnections() {
    var filter = { user: $('conn-user').value.trim(), channel: $('conn-channel').value.trim(), client: $('conn-client').value.trim() };
    Object.keys(filter).forEach(function (k) { if (!filter[k]) delete filter[k]; });
    return call('connections', filter).then(renderConnections).catch(function (e) { $('conn-note').textContent = errText(e); });
  }

  var listed = null; // the last connections answer, as rendered

  function renderConnections(r) {
    listed = r;
    var list = r.connections || [];
    fill($('conn-list'), list.map(function (c) {
      var row = el('tr', { class: 'pick', 'data-client': c.client, tabindex: '0' },
        el('td', {}, el('code', { text: c.client })),
        el('td', { text: c.user || '(anonymous)' }),
        el('td', { text: c.transport }),
        el('td', {}, el('code', { text: c.node })));
      var open = function () { inspect(c); };
      row.addEventListener('click', open);
      row.addEventListener('keydown', function (e) { if (e.key === 'Enter') open(); });
      return row;
    }), 'no matching connections', 4);
    var note = list.length + ' connection' + (list.length === 1 ? '' : 's');
    if (r.truncated) note += ' shown; some nodes have more and listed only part of theirs: filter to narrow';
    if (r.missing_nodes && r.missing_nodes.length) note += '; no answer from ' + r.missing_nodes.join(', ');
    $('conn-note').textContent = note;
    if (inspected && !list.some(function (c) { return c.client === inspected.client; })) $('conn-detail').hidden = true;
  }

  $('conn-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    loadConnections();
  });

  var inspected = null;

  function inspect(c) {
    inspected = c;
    $('conn-detail').hidden = false;
    $('cd-client').textContent = c.client;
    $('cd-user').textContent = c.user || '(anonymous)';
    $('cd-node').textContent = c.node;
    $('cd-transport').textContent = c.transport;
    $('cd-since').textContent = new Date(c.connected_at).toLocaleString();
    $('cd-result').textContent = '';
    document.querySelectorAll('#conn-list tr').forEach(function (r) {
      if (r.dataset.client === c.client) r.setAttribute('aria-selected', 'true');
      else r.removeAttribute('aria-selected');
    });
    var ul = $('cd-channels');
    ul.replaceChildren();
    (c.channels || []).forEach(function (ch) {
      var btn = el('button', { type: 'button', class: 'small ghost', 'data-unsubscribe': ch, text: 'Unsubscribe' });
      btn.addEventListener('click', function () {
        call('unsubscribe', { client: c.client, channel: ch }).then(function () {
          $('cd-result').textContent = 'unsubscribed from ' + ch;
          btn.closest('li').remove();
          if (!ul.children.length) ul.append(el('li', { class: 'muted', text: 'none' }));
        }).catch(function (e) { $('cd-result').textContent = errText(e); });
      });
      ul.append(el('li', {}, el('code', { text: ch }), btn));
    });
    if (!ul.children.length) ul.append(el('li', { class: 'muted', text: 'none' }));
  }

  $('cd-disconnect').addEventListener('click', function () {
    if (!inspected) return;
    var id = inspected.client;
    call('disconnect', { client: id }).then(function () {
      $('cd-result').textContent = 'disconnected ' + id;
      // Every node closes it once the broadcast reaches it: drop it from the
      // list now rather than ask again and maybe still find it.
      if (listed) {
        var rest = (listed.connections || []).filter(function (c) { return c.client !== id; });
        renderConnections(Object.assign({}, listed, { connections: rest }));
      }
    }).catch(function (e) { $('cd-result').textContent = errText(e); });
  });

  // --- start ---

  var saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved && tokenExpiry(saved) > Date.now()) loggedIn(saved);
  else logout('');
})();
