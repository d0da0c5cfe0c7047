// The home page's live box: the newest publications of chat:demo.
(function () {
  'use strict';
  var D = window.HeraldDemo;
  var list = document.getElementById('live');
  var count = document.getElementById('live-count');
  var KEEP = 5;
  var stats = { received: 0, last: [] };
  window.demo.home = stats;

  // The curl hint names the server this page came from.
  var curl = document.getElementById('curl');
  if (curl) curl.textContent = curl.textContent.replace('$HERALD', location.origin);

  function show(pub) {
    stats.received++;
    count.textContent = String(stats.received);
    var empty = list.querySelector('.empty');
    if (empty) list.removeChild(empty);
    var data = pub.data;
    var who = data && typeof data === 'object' && typeof data.user === 'string' ? data.user + ': ' : '';
    var text = who + D.dataText(data);
    stats.last.push(text);
    if (stats.last.length > KEEP) stats.last.shift();
    var li = D.el('li', { 'data-offset': pub.offset },
      D.el('span', { class: 'time', text: D.clock(pub.time ? new Date(pub.time) : new Date()) }),
      D.el('span', { class: 'text', text: text }));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > KEEP) list.removeChild(list.lastChild);
  }

  D.start().then(function (client) {
    var sub = client.newSubscription('chat:demo');
    sub.on('publication', function (pub) {
      // Typing indicators from the chat page are not messages.
      if (pub.data && typeof pub.data === 'object' && pub.data.typing) return;
      show(pub);
    });
    sub.subscribe();
    D.connect();
  }).catch(D.fail);
})();
