// Market ticker over SSE: prices with sparklines, and counters that check
// the SDK's promise of each stored publication once, in order.
(function () {
  'use strict';
  var D = window.HeraldDemo;
  var CHANNEL = 'demo:ticker';
  var POINTS = 60;

  var stats = {
    received: 0, gaps: 0, duplicates: 0, lastOffset: 0, reconnects: 0,
    notRecovered: 0, epochChanges: 0, offsets: [], resume: '—', epoch: null,
  };
  window.demo.ticker = stats;

  var els = {
    ticks: document.getElementById('ticks'),
    gaps: document.getElementById('gaps'),
    dups: document.getElementById('dups'),
    last: document.getElementById('last-offset'),
    reconnects: document.getElementById('reconnects'),
    resume: document.getElementById('resume'),
    latency: document.getElementById('latency'),
    empty: document.getElementById('ticker-empty'),
    grid: document.getElementById('symbols'),
  };

  // The offset the next publication should follow, in stats.epoch; null
  // when the sequence starts over (first tick, broken continuity).
  var base = null;
  var symbols = {}; // symbol -> card state
  var firstLive = null; // offset of the first live tick, where history prefill stops

  function showStats() {
    els.ticks.textContent = String(stats.received);
    els.gaps.textContent = String(stats.gaps);
    els.gaps.classList.toggle('bad', stats.gaps > 0);
    els.dups.textContent = String(stats.duplicates);
    els.dups.classList.toggle('bad', stats.duplicates > 0);
    els.last.textContent = stats.lastOffset ? String(stats.lastOffset) : '—';
    els.reconnects.textContent = String(stats.reconnects);
    els.resume.textContent = stats.resume;
    els.resume.classList.toggle('bad', stats.resume === 'not recovered');
  }

  // Counts one stored offset against the sequence: each should be the
  // last one plus one within an epoch.
  function count(pub) {
    if (!(pub.offset > 0)) return;
    stats.offsets.push(pub.offset);
    if (pub.epoch && stats.epoch && pub.epoch !== stats.epoch) {
      stats.epochChanges++;
      base = null;
    }
    if (pub.epoch) stats.epoch = pub.epoch;
    if (base !== null) {
      if (pub.offset <= base) stats.duplicates++;
      else if (pub.offset > base + 1) stats.gaps += pub.offset - base - 1;
    }
    if (base === null || pub.offset > base) base = pub.offset;
    stats.lastOffset = pub.offset;
  }

  function fmt(n) {
    return n >= 1000 ? n.toFixed(0) : n >= 100 ? n.toFixed(2) : n.toFixed(n >= 10 ? 2 : 3);
  }

  function card(sym) {
    if (symbols[sym]) return symbols[sym];
    var price = D.el('span', { class: 'price', text: '—' });
    var change = D.el('span', { class: 'change', text: '0.00' });
    var canvas = D.el('canvas', { class: 'spark', width: 300, height: 48, 'aria-hidden': 'true' });
    var node = D.el('article', { class: 'card symbol', 'data-symbol': sym },
      D.el('div', { class: 'head' }, D.el('span', { class: 'name', text: sym }), change),
      price, canvas);
    // Keep cards in a stable, alphabetical order whatever the feed sends first.
    var before = null;
    Object.keys(symbols).sort().some(function (s) {
      if (s > sym) { before = symbols[s].node; return true; }
      return false;
    });
    els.grid.insertBefore(node, before);
    symbols[sym] = { node: node, price: price, change: change, canvas: canvas, series: [], last: null };
    return symbols[sym];
  }

  function update(sym, value) {
    var c = card(sym);
    var prev = c.last;
    c.last = value;
    c.price.textContent = fmt(value);
    if (prev !== null) {
      var d = value - prev;
      c.change.textContent = (d > 0 ? '▲ ' : d < 0 ? '▼ ' : '') + Math.abs(d).toFixed(2) + ' (' + (prev ? (d / prev * 100).toFixed(2) : '0.00') + '%)';
      c.node.classList.toggle('up', d > 0);
      c.node.classList.toggle('down', d < 0);
    }
  }

  function pricesOf(pub) {
    var d = pub.data;
    return d && typeof d === 'object' && d.prices && typeof d.prices === 'object' ? d.prices : null;
  }

  function addPoint(sym, offset, value) {
    var s = card(sym).series;
    s.push({ offset: offset, value: value });
    if (s.length > POINTS) s.splice(0, s.length - POINTS);
  }

  var dirty = false;
  function redraw() {
    if (dirty) return;
    dirty = true;
    requestAnimationFrame(function () {
      dirty = false;
      Object.keys(symbols).forEach(function (s) { spark(symbols[s]); });
    });
  }

  function spark(c) {
    var cv = c.canvas;
    var dpr = window.devicePixelRatio || 1;
    var w = Math.max(1, Math.round(cv.clientWidth * dpr));
    var h = Math.max(1, Math.round(cv.clientHeight * dpr));
    if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
    var ctx = cv.getContext('2d');
    ctx.clearRect(0, 0, w, h);
    var pts = c.series;
    if (pts.length < 2) return;
    var min = Infinity, max = -Infinity;
    pts.forEach(function (p) { min = Math.min(min, p.value); max = Math.max(max, p.value); });
    var span = max - min || 1;
    var pad = 4 * dpr;
    // Right-aligned: a short series grows in from the right edge.
    var x = function (i) { return pad + ((POINTS - pts.length + i) / (POINTS - 1)) * (w - 2 * pad); };
    var y = function (v) { return h - pad - ((v - min) / span) * (h - 2 * pad); };
    var up = pts[pts.length - 1].value >= pts[0].value;
    ctx.beginPath();
    pts.forEach(function (p, i) { if (i) ctx.lineTo(x(i), y(p.value)); else ctx.moveTo(x(i), y(p.value)); });
    ctx.lineWidth = 2 * dpr;
    ctx.lineJoin = 'round';
    ctx.strokeStyle = up ? '#12805c' : '#c2362b';
    ctx.stroke();
    ctx.lineTo(x(pts.length - 1), h);
    ctx.lineTo(x(0), h);
    ctx.closePath();
    ctx.fillStyle = up ? 'rgba(18, 128, 92, .10)' : 'rgba(194, 54, 43, .10)';
    ctx.fill();
  }
  window.addEventListener('resize', redraw);

  function onTick(pub) {
    stats.received++;
    count(pub);
    if (firstLive === null && pub.offset > 0) firstLive = pub.offset;
    var prices = pricesOf(pub);
    if (prices) {
      els.empty.hidden = true;
      Object.keys(prices).forEach(function (sym) {
        var v = Number(prices[sym]);
        if (!isFinite(v)) return;
        update(sym, v);
        addPoint(sym, pub.offset, v);
      });
      redraw();
    }
    var t = pub.data && typeof pub.data.time === 'number' ? pub.data.time : pub.time;
    if (t) els.latency.textContent = Math.max(0, Date.now() - t) + ' ms';
    showStats();
  }

  // History only fills the sparklines in: it is not counted, since the
  // counters are about what the subscription delivers.
  function prefill(sub) {
    sub.history({ limit: POINTS, reverse: true }).then(function (r) {
      var pubs = r.publications.slice().reverse().filter(function (p) { return firstLive === null || p.offset < firstLive; });
      if (!pubs.length) return;
      var older = {};
      pubs.forEach(function (p) {
        var prices = pricesOf(p);
        if (!prices) return;
        Object.keys(prices).forEach(function (sym) {
          var v = Number(prices[sym]);
          if (!isFinite(v)) return;
          (older[sym] = older[sym] || []).push({ offset: p.offset, value: v });
        });
      });
      Object.keys(older).forEach(function (sym) {
        var c = card(sym);
        c.series = older[sym].concat(c.series).slice(-POINTS);
        if (c.last === null) update(sym, older[sym][older[sym].length - 1].value);
      });
      els.empty.hidden = Object.keys(symbols).length > 0;
      redraw();
    }, function () { /* the sparklines fill in live instead */ });
  }

  D.start({ defaultTransport: 'sse' }).then(function (client) {
    var connectedOnce = false;
    client.on('connected', function () {
      if (connectedOnce) stats.reconnects++;
      connectedOnce = true;
      showStats();
    });
    var sub = client.newSubscription(CHANNEL);
    var prefilled = false;
    sub.on('subscribed', function (e) {
      if (e.wasRecovering) {
        stats.resume = e.recovered ? 'recovered' : 'not recovered';
        if (!e.recovered) stats.notRecovered++;
      }
      var pos = e.position;
      if (pos && pos.epoch) {
        if (stats.epoch && pos.epoch !== stats.epoch) {
          stats.epochChanges++;
          base = null;
        }
        stats.epoch = pos.epoch;
      }
      // A recovered resume must bring every missed tick, so the sequence
      // carries on; otherwise it restarts where the stream continues.
      if (!(e.wasRecovering && e.recovered)) base = pos ? pos.offset : null;
      if (!prefilled) {
        prefilled = true;
        prefill(sub);
      }
      showStats();
    });
    sub.on('publication', onTick);
    sub.on('unsubscribed', function (e) {
      if (e.error) D.fail(new Error(CHANNEL + ': ' + D.errText(e.error)));
    });
    sub.subscribe();
    D.connect();
  }).catch(D.fail);

  showStats();
})();
