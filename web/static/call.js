// Video call: a WebRTC mesh of up to four people, signaled through a Herald
// room with the SDK's PeerRoom; chat and files over its data channels.
(function () {
  'use strict';
  var D = window.HeraldDemo;
  var MAX_PEOPLE = 4;
  var CHUNK = 16 * 1024; // the size every browser's data channels carry whole
  var MAX_FILE = 50 * 1024 * 1024;
  // Sending pauses while this much is queued on a channel, so a large
  // file never sits whole in the browser's send buffer.
  var HIGH_WATER = 1024 * 1024;
  var LOW_WATER = 256 * 1024;

  var room = roomName();
  var channel = 'call:' + room;
  var relay = D.params.get('relay') === '1';

  var tiles = document.getElementById('tiles');
  var localVideo = document.getElementById('local');
  var statusEl = document.getElementById('call-status');
  var micBtn = document.getElementById('mic');
  var camBtn = document.getElementById('cam');
  var joinBtn = document.getElementById('join');
  var messages = document.getElementById('call-messages');
  var composer = document.getElementById('call-composer');
  var textInput = document.getElementById('call-text');
  var sendBtn = document.getElementById('call-send');
  var fileInput = document.getElementById('file');
  var transfers = document.getElementById('transfers');

  var stats = { room: room, channel: channel, relay: relay, joined: false, full: false, media: null, peers: [], open: [], chat: [], files: [], errors: [] };
  window.demo.call = stats;

  var client = null;
  var pr = null; // the PeerRoom while joined, also on window.demo.peerRoom for browser tests
  var stream = null; // local camera and microphone, if allowed
  var incoming = {}; // peer id -> the file arriving from it
  var seq = 0;

  document.getElementById('call-title').textContent = '#' + room;
  document.querySelector('.tile.local .who').textContent = D.name + ' (you)';
  setupInvite();

  // The room comes from ?room= or the fragment; without one, a fresh room
  // goes in the fragment, so the address bar holds the invite.
  function roomName() {
    var valid = /^[A-Za-z0-9_.-]{1,64}$/;
    var fromHash = decodeURIComponent(location.hash.slice(1));
    if (valid.test(fromHash)) return fromHash;
    var fromQuery = D.room('');
    if (fromQuery) return fromQuery;
    var fresh = 'room-' + Math.random().toString(36).slice(2, 8);
    history.replaceState(null, '', location.pathname + location.search + '#' + fresh);
    return fresh;
  }

  function setupInvite() {
    var invite = document.getElementById('invite');
    var u = new URL(location.href);
    u.searchParams.delete('name');
    u.hash = room;
    invite.value = u.toString();
    document.getElementById('copy').addEventListener('click', function () {
      invite.select();
      var done = function () { status('Link copied.'); };
      if (navigator.clipboard) navigator.clipboard.writeText(invite.value).then(done, function () { /* selected: copy by hand */ });
    });
  }

  function status(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle('error-text', !!isError);
  }

  function report(what, err) {
    stats.errors.push(what + ': ' + D.errText(err));
    status(what + ': ' + D.errText(err), true);
  }

  // Media

  function startMedia() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return Promise.resolve(null);
    return navigator.mediaDevices.getUserMedia({ audio: true, video: { width: { ideal: 640 }, height: { ideal: 480 } } }).then(function (s) {
      stream = s;
      localVideo.srcObject = s;
      micBtn.disabled = camBtn.disabled = false;
      stats.media = s.getTracks().map(function (t) { return t.kind; });
      return s;
    }, function (err) {
      stats.media = [];
      status('No camera or microphone (' + D.errText(err) + '): you can still chat and send files.', true);
      document.querySelector('.tile.local').classList.add('cam-off');
      return null;
    });
  }

  function toggle(kind, btn, onText, offText) {
    if (!stream) return;
    var tracks = kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks();
    var off = btn.getAttribute('aria-pressed') !== 'true';
    tracks.forEach(function (t) { t.enabled = !off; });
    btn.setAttribute('aria-pressed', String(off));
    btn.textContent = off ? onText : offText;
    if (kind === 'video') document.querySelector('.tile.local').classList.toggle('cam-off', off);
    broadcastState();
  }
  micBtn.addEventListener('click', function () { toggle('audio', micBtn, 'Unmute', 'Mute'); });
  camBtn.addEventListener('click', function () { toggle('video', camBtn, 'Camera on', 'Camera off'); });

  // What a muted microphone or a covered camera looks like to the others:
  // a disabled track sends silence and black frames, so say why.
  function myState() {
    return {
      type: 'state',
      audio: micBtn.getAttribute('aria-pressed') !== 'true',
      video: !!stream && camBtn.getAttribute('aria-pressed') !== 'true',
    };
  }
  function broadcastState() {
    if (pr) pr.send(JSON.stringify(myState()));
  }

  // Tiles

  function tileOf(id) {
    return tiles.querySelector('.tile[data-peer="' + CSS.escape(id) + '"]');
  }

  function userOf(peer) {
    return (peer.info && (peer.info.user || peer.info.client)) || 'guest';
  }

  function addTile(peer) {
    var video = D.el('video', { autoplay: true, playsinline: true });
    var tile = D.el('figure', { class: 'tile', 'data-peer': peer.id, 'data-user': userOf(peer), 'data-state': 'new' },
      video,
      D.el('figcaption', null, D.el('span', { class: 'who', text: userOf(peer) }), ' ', D.el('span', { class: 'flags' })));
    tiles.appendChild(tile);
    refreshPeers();
  }

  function showTrack(e) {
    var tile = tileOf(e.peer.id);
    if (!tile) return;
    var video = tile.querySelector('video');
    var s = e.streams[0];
    if (!s) {
      s = video.srcObject || new MediaStream();
      s.addTrack(e.track);
    }
    if (video.srcObject !== s) video.srcObject = s;
    // Joining was a click, so sound may play; if the browser still says
    // no, play muted rather than not at all.
    video.play().catch(function () {
      video.muted = true;
      video.play().catch(function () { /* shown as paused */ });
      tile.classList.add('muted-autoplay');
    });
  }

  function removeTile(id) {
    var tile = tileOf(id);
    if (tile) tile.parentNode.removeChild(tile);
    refreshPeers();
  }

  function refreshPeers() {
    stats.peers = pr ? pr.peers.map(function (p) { return p.id; }) : [];
    stats.open = pr ? pr.peers.filter(function (p) { return p.channel && p.channel.readyState === 'open'; }).map(function (p) { return p.id; }) : [];
    var canTalk = stats.open.length > 0;
    textInput.disabled = sendBtn.disabled = fileInput.disabled = !canTalk;
    if (!stats.joined) return;
    var n = stats.peers.length;
    status(n === 0 ? 'Waiting for others to join…' : 'In the call with ' + n + (n === 1 ? ' other' : ' others') + (relay ? ' (relayed)' : ''));
  }

  function showPeerState(peer, state) {
    var tile = tileOf(peer.id);
    if (tile) tile.setAttribute('data-state', state);
  }

  function showRemoteState(peer, s) {
    var tile = tileOf(peer.id);
    if (!tile) return;
    tile.classList.toggle('cam-off', !s.video);
    var flags = [];
    if (!s.audio) flags.push('muted');
    tile.querySelector('.flags').textContent = flags.join(' ');
  }

  // Chat

  function addMessage(user, text, mine) {
    var empty = messages.querySelector('.empty');
    if (empty) messages.removeChild(empty);
    messages.appendChild(D.el('li', { class: 'message' + (mine ? ' mine' : ''), 'data-user': user },
      D.el('div', { class: 'meta' }, D.el('span', { class: 'user', text: user })),
      D.el('span', { class: 'text', text: text })));
    messages.scrollTop = messages.scrollHeight;
  }

  composer.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = textInput.value.trim();
    if (!text || !pr) return;
    if (pr.send(JSON.stringify({ type: 'chat', text: text })) === 0) return;
    addMessage(D.name, text, true);
    textInput.value = '';
  });

  // Files: a header, then the bytes as binary messages, then an end mark.
  // A channel is ordered and reliable, and each sender sends one file at a
  // time on it, so the bytes between two marks are one file's.

  var queues = {}; // peer id -> the promise of its last send

  fileInput.addEventListener('change', function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = '';
    if (!file || !pr) return;
    if (file.size > MAX_FILE) {
      status(file.name + ' is over 50 MB: too large for this demo.', true);
      return;
    }
    pr.peers.forEach(function (peer) {
      if (!peer.channel || peer.channel.readyState !== 'open') return;
      var row = transferRow('Sending', file.name, file.size, userOf(peer));
      queues[peer.id] = (queues[peer.id] || Promise.resolve()).then(function () {
        return sendFile(peer, file, row);
      }).catch(function (err) {
        row.fail(D.errText(err));
      });
    });
  });

  function sendFile(peer, file, row) {
    var ch = peer.channel;
    var id = ++seq;
    ch.bufferedAmountLowThreshold = LOW_WATER;
    ch.send(JSON.stringify({ type: 'file', id: id, name: file.name, size: file.size, mime: file.type || 'application/octet-stream' }));
    var offset = 0;
    function drained() {
      if (ch.bufferedAmount <= HIGH_WATER) return Promise.resolve();
      return new Promise(function (resolve, reject) {
        function low() { cleanup(); resolve(); }
        function closed() { cleanup(); reject(new Error('the connection closed')); }
        function cleanup() {
          ch.removeEventListener('bufferedamountlow', low);
          ch.removeEventListener('close', closed);
        }
        ch.addEventListener('bufferedamountlow', low);
        ch.addEventListener('close', closed);
      });
    }
    function next() {
      if (ch.readyState !== 'open') throw new Error('the connection closed');
      if (offset >= file.size) {
        ch.send(JSON.stringify({ type: 'file-end', id: id }));
        row.done(null);
        return null;
      }
      var end = Math.min(file.size, offset + CHUNK);
      return file.slice(offset, end).arrayBuffer().then(function (buf) {
        if (ch.readyState !== 'open') throw new Error('the connection closed');
        ch.send(buf);
        offset = end;
        row.progress(offset);
        return drained();
      }).then(next);
    }
    return Promise.resolve().then(next);
  }

  function receive(peer, data) {
    if (typeof data !== 'string') {
      var f = incoming[peer.id];
      if (!f) return;
      f.chunks.push(data);
      f.received += data.byteLength;
      f.row.progress(f.received);
      return;
    }
    var msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'chat' && typeof msg.text === 'string') {
      stats.chat.push({ from: peer.id, user: userOf(peer), text: msg.text });
      addMessage(userOf(peer), msg.text, false);
    } else if (msg.type === 'state') {
      showRemoteState(peer, msg);
    } else if (msg.type === 'file' && typeof msg.name === 'string' && msg.size >= 0) {
      incoming[peer.id] = { meta: msg, chunks: [], received: 0, row: transferRow('Receiving', msg.name, msg.size, userOf(peer)) };
    } else if (msg.type === 'file-end') {
      var got = incoming[peer.id];
      delete incoming[peer.id];
      if (!got || got.meta.id !== msg.id) return;
      if (got.received !== got.meta.size) {
        got.row.fail('got ' + got.received + ' of ' + got.meta.size + ' bytes');
        return;
      }
      var blob = new Blob(got.chunks, { type: got.meta.mime });
      stats.files.push({ from: peer.id, name: got.meta.name, size: blob.size });
      got.row.done(blob);
    }
  }

  function sizeText(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1024 / 1024).toFixed(1) + ' MiB';
  }

  // One line per file and peer: a progress bar, then a link or a failure.
  function transferRow(verb, name, size, user) {
    var bar = D.el('progress', { max: size || 1, value: 0 });
    var label = D.el('span', { class: 'what', text: verb + ' ' + name + (verb === 'Sending' ? ' to ' : ' from ') + user });
    var li = D.el('li', { class: 'transfer', 'data-state': 'active' }, label, bar);
    transfers.insertBefore(li, transfers.firstChild);
    return {
      progress: function (n) { bar.value = n; },
      done: function (blob) {
        li.setAttribute('data-state', 'done');
        bar.value = size || 1;
        if (!blob) {
          label.textContent = 'Sent ' + name + ' to ' + user + ' · ' + sizeText(size);
          return;
        }
        label.textContent = '';
        label.appendChild(D.el('a', { href: URL.createObjectURL(blob), download: name, class: 'download', text: name }));
        label.appendChild(document.createTextNode(' from ' + user + ' · ' + sizeText(blob.size)));
      },
      fail: function (why) {
        li.setAttribute('data-state', 'failed');
        label.textContent = name + ': ' + why;
      },
    };
  }

  // Joining and leaving

  function join() {
    joinBtn.disabled = true;
    stats.full = false;
    status('Joining…');
    // The room is checked first so that a fifth person does not make four
    // others start connecting for nothing.
    client.presence(channel).then(function (r) {
      if (Object.keys(r.clients).length >= MAX_PEOPLE) return full();
      var options = { stream: stream, dataChannel: true };
      if (relay) options.configuration = { iceTransportPolicy: 'relay' };
      var next = new Herald.PeerRoom(client, channel, options);
      wire(next);
      pr = window.demo.peerRoom = next;
      return next.join(10000).then(function () {
        // Two who joined at once may both have found room.
        return next.subscription.presence();
      }).then(function (r2) {
        if (Object.keys(r2.clients).length > MAX_PEOPLE) {
          leave();
          return full();
        }
        stats.joined = true;
        joinBtn.textContent = 'Leave';
        joinBtn.classList.add('danger');
        refreshPeers();
      });
    }).catch(function (err) {
      if (pr) leave();
      report('could not join', err);
    }).then(function () {
      joinBtn.disabled = false;
    });
  }

  function full() {
    stats.full = true;
    status('This room is full: calls here take ' + MAX_PEOPLE + ' people. Try another room.', true);
  }

  function leave() {
    var r = pr;
    pr = window.demo.peerRoom = null;
    stats.joined = false;
    if (r) r.leave();
    Array.prototype.forEach.call(tiles.querySelectorAll('.tile:not(.local)'), function (t) { t.parentNode.removeChild(t); });
    incoming = {};
    joinBtn.textContent = 'Join call';
    joinBtn.classList.remove('danger');
    refreshPeers();
    if (!stats.full) status('You left the call.');
  }

  function wire(r) {
    r.on('peerjoined', function (e) { addTile(e.peer); });
    r.on('track', showTrack);
    r.on('peerstate', function (e) { showPeerState(e.peer, e.state); });
    r.on('channelopen', function (e) {
      e.channel.send(JSON.stringify(myState()));
      refreshPeers();
    });
    r.on('message', function (e) { receive(e.peer, e.data); });
    r.on('peerleft', function (e) {
      var f = incoming[e.peer.id];
      if (f) f.row.fail('the connection closed');
      delete incoming[e.peer.id];
      removeTile(e.peer.id);
    });
    r.on('error', function (e) { report(e.peer ? 'with ' + userOf(e.peer) : 'room', e.error); });
  }

  joinBtn.addEventListener('click', function () {
    if (pr) leave();
    else join();
  });

  D.start({ defaultTransport: 'websocket' }).then(function (c) {
    client = c;
    if (c.forcedTransport !== 'websocket') status('Calls need WebSocket: signaling has no other transport.', true);
    D.connect();
    return Promise.all([startMedia(), c.ready(15000)]);
  }).then(function () {
    joinBtn.disabled = false;
    if (!statusEl.classList.contains('error-text')) status('Ready: check your camera, then join.');
  }).catch(function (err) {
    status('cannot start', true);
    D.fail(err);
  });
})();
