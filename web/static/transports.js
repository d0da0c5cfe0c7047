// Transport panel: force a transport, watch the client's events, and
// measure the round trip through the server on each transport.
(function () {
  'use strict';
  var D = window.HeraldDemo;
  var POLLING = ['longpoll', 'shortpoll'];

  var logEl = document.getElementById('log');
  var buttons = Array.prototype.slice.call(document.querySelectorAll('#switcher button[data-transport]'));
  var rows = Array.prototype.slice.call(document.querySelectorAll('#rtt-table tr[data-transport]'));
  var rttEl = document.getElementById('rtt');

  var channel = 'demo:echo-' + Math.random().toString(36).slice(2, 10);
  document.getElementById('echo-channel').textContent = channel;

  var stats = { rtts: {}, samples: {}, switches: 0, channel: channel, sent: 0 };
  window.demo.transports = stats;

  var client = null;
  var sub = null;
  var user = null;
  var inflight = 0;

  function log(text, kind) {
    D.log(logEl, text, kind);
  }

  document.getElementById('clear-log').addEventListener('click', function () {
    while (logEl.firstChild) logEl.removeChild(logEl.firstChild);
  });

  function render() {
    if (!client) return;
    var t = client.transport;
    document.getElementById('current-transport').textContent = t || '—';
    document.getElementById('client-state').textContent = client.state + (client.forcedTransport ? ' (forced)' : '');
    document.getElementById('client-id').textContent = client.clientId || (t === 'websocket' ? '—' : '— (WebSocket connections only)');
    document.getElementById('client-user').textContent = window.demo.anonymous ? 'anonymous' : (user || D.name);
    document.getElementById('transport-order').textContent = client.transports.join(' → ');
    var selected = client.forcedTransport || 'auto';
    buttons.forEach(function (b) {
      var name = b.getAttribute('data-transport');
      b.setAttribute('aria-pressed', String(name === selected));
      b.classList.toggle('current', name === t && client.state === 'connected');
    });
    rows.forEach(function (r) {
      r.classList.toggle('current', r.getAttribute('data-transport') === t);
    });
  }
  setInterval(render, 1000);

  buttons.forEach(function (b) {
    b.addEventListener('click', function () {
      if (!client) return;
      var name = b.getAttribute('data-transport');
      try {
        client.setTransport(name === 'auto' ? null : name);
        log(name === 'auto' ? 'automatic transport choice' : 'forcing ' + name, 'transport');
      } catch (err) {
        log('cannot use ' + name + ': ' + D.errText(err), 'error');
      }
      render();
    });
  });

  function record(t, ms) {
    ms = Math.round(ms * 10) / 10;
    stats.rtts[t] = ms;
    stats.samples[t] = (stats.samples[t] || 0) + 1;
    rttEl.textContent = ms.toFixed(1);
    rows.forEach(function (r) {
      if (r.getAttribute('data-transport') !== t) return;
      r.querySelector('.rtt-last').textContent = ms.toFixed(1) + ' ms';
      r.querySelector('.rtt-n').textContent = String(stats.samples[t]);
    });
  }

  // One echo a second. Polling cannot carry ephemeral publications, so
  // there the echo is stored; a few outstanding at most, so a stalled
  // connection does not pile them up.
  function ping() {
    if (!client || !sub || client.state !== 'connected' || sub.state !== 'subscribed' || inflight >= 3) return;
    var t = client.transport;
    inflight++;
    stats.sent++;
    sub.publish({ sent: performance.now(), transport: t, tab: D.tab }, { ephemeral: POLLING.indexOf(t) < 0 })
      .catch(function (err) { log('echo publish failed: ' + D.errText(err), 'error'); })
      .then(function () { inflight--; });
  }
  setInterval(ping, 1000);

  function onEcho(pub) {
    var d = pub.data;
    if (!d || typeof d.sent !== 'number' || d.tab !== D.tab) return;
    // An echo that crossed a transport switch measures neither transport.
    if (d.transport !== client.transport) return;
    record(d.transport, performance.now() - d.sent);
  }

  D.start().then(function (c) {
    client = c;
    log('you are ' + D.name + (window.demo.anonymous ? ' (anonymous: no /demo/token on this server)' : ' (token from /demo/token)'));
    if (window.demo.forced) log('transport forced from the URL: ' + window.demo.forced, 'transport');
    client.on('state', function (e) {
      log('state ' + e.oldState + ' → ' + e.newState);
      render();
    });
    client.on('connecting', function (e) {
      log('connecting' + (client.transport ? ' over ' + client.transport : '') + ': ' + e.reason + (e.code ? ' (code ' + e.code + ')' : ''));
      render();
    });
    client.on('connected', function (e) {
      user = e.user || null;
      log('connected over ' + e.transport + (e.client ? ', client ' + e.client : ''));
      render();
    });
    client.on('transport', function (e) {
      if (e.previous !== null) stats.switches++;
      log('transport ' + (e.previous || 'none') + ' → ' + e.transport + ' (' + e.reason + ')', 'transport');
      render();
    });
    client.on('disconnected', function (e) {
      log('disconnected: ' + e.reason + (e.code ? ' (code ' + e.code + ')' : '') + (e.error ? ': ' + D.errText(e.error) : ''), 'error');
      render();
    });
    client.on('error', function (e) {
      log(e.type + ' error' + (e.transport ? ' on ' + e.transport : '') + ': ' + D.errText(e.error), 'error');
      render();
    });

    sub = client.newSubscription(channel);
    sub.on('subscribed', function (e) {
      log('subscribed to ' + channel + (e.wasRecovering ? (e.recovered ? ', recovered' : ', NOT recovered') : ''));
    });
    sub.on('subscribing', function (e) { log('subscribing to ' + channel + ': ' + e.reason); });
    sub.on('unsubscribed', function (e) {
      log('unsubscribed from ' + channel + ': ' + e.reason, e.error ? 'error' : null);
    });
    sub.on('error', function (e) { log(channel + ': ' + D.errText(e.error), 'error'); });
    sub.on('publication', onEcho);
    sub.subscribe();
    D.connect();
    render();
  }).catch(D.fail);
})();
