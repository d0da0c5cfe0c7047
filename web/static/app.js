// Herald demo: a chat on one channel over the Herald JSON protocol, on a
// WebSocket (commands with ids, replies, pushes, ping/pong) or on SSE with
// publishing through POST /publish. No dependencies.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    connectForm: $("connect-form"),
    channel: $("channel"),
    transport: $("transport"),
    connect: $("connect"),
    messages: $("messages"),
    publishForm: $("publish-form"),
    text: $("text"),
    send: $("send"),
  };

  // The open connection: a WSConn or an SSEConn, or null.
  let conn = null;

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
    const live = state === "live";
    ui.text.disabled = !live;
    ui.send.disabled = !live;
  }

  // addLine appends a line to the message list. Text is always set with
  // textContent: message data comes from other users and is never HTML.
  function addLine(kind, text, meta) {
    const atBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 40;
    const li = document.createElement("li");
    li.className = kind;
    if (meta) {
      const m = document.createElement("span");
      m.className = "meta";
      m.textContent = meta;
      li.append(m);
    }
    li.append(document.createTextNode(text));
    ui.messages.append(li);
    while (ui.messages.children.length > 500) ui.messages.firstElementChild.remove();
    if (atBottom) li.scrollIntoView({ block: "end" });
  }

  function showPublication(p) {
    const d = p.data;
    const text = d && typeof d === "object" && typeof d.text === "string" ? d.text : JSON.stringify(d);
    const time = new Date(p.time).toLocaleTimeString();
    const who = p.info && p.info.user ? ` ${p.info.user}` : "";
    addLine("pub", text, p.offset ? `#${p.offset} ${time}${who}` : `${time}${who} (ephemeral)`);
  }

  function showPresence(ev) {
    const info = ev.info || {};
    const who = info.user || (info.client ? `client ${info.client.slice(0, 8)}` : "someone");
    addLine("system", `${who} ${ev.type === "join" ? "joined" : "left"}`);
  }

  // errorText turns a Herald error object into a readable line.
  const errorText = (e) => (e && e.message ? `${e.message} (code ${e.code})` : String(e));

  // WSConn speaks the bidirectional protocol. It reconnects with backoff
  // when the server says reconnecting helps (close codes below 4500, or a
  // dropped connection) and resubscribes from the last offset it saw.
  class WSConn {
    constructor(channel) {
      this.channel = channel;
      this.nextId = 1;
      this.pending = new Map();
      this.pos = null; // {epoch, offset} of the last publication seen
      this.attempt = 0;
      this.stopped = false;
      this.open();
    }

    open() {
      setStatus("connecting", this.attempt ? "reconnecting…" : "connecting…");
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}/ws`);
      this.ws = ws;
      ws.onopen = () => this.start().catch((err) => {
        addLine("error", `subscribe failed: ${errorText(err)}`);
        setStatus("error", "not subscribed");
      });
      // A frame may hold several JSON messages, one per line.
      ws.onmessage = (ev) => {
        for (const line of String(ev.data).split("\n")) {
          if (line.trim() === "") continue;
          try {
            this.handle(JSON.parse(line));
          } catch (err) {
            addLine("error", `bad frame from server: ${err}`);
          }
        }
      };
      ws.onclose = (ev) => this.onClose(ev);
    }

    send(msg) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
    }

    // call sends a command and resolves with its result, or rejects with
    // the server's error. onResult, if given, runs as soon as the reply is
    // read: before the pushes that follow it in the same frame, which an
    // awaiting caller would only see after.
    call(method, params, onResult) {
      const id = this.nextId++;
      return new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject, onResult });
        this.send({ id, method, params });
      });
    }

    async start() {
      await this.call("connect", {});
      const since = this.pos;
      const params = { channel: this.channel };
      if (since) Object.assign(params, { recover: true, epoch: since.epoch, offset: since.offset });
      await this.call("subscribe", params, (res) => {
        if (since && res.recovered) {
          const missed = res.offset - since.offset;
          addLine("system", missed > 0 ? `reconnected: ${missed} missed message(s) follow` : "reconnected: nothing missed");
        } else if (since) {
          addLine("system", "reconnected, but the messages missed meanwhile are no longer in history");
        } else {
          addLine("system", `subscribed to ${this.channel}`);
        }
        // Recovered publications follow this reply as pushes.
        this.pos = { epoch: res.epoch, offset: since && res.recovered ? since.offset : res.offset };
        this.attempt = 0;
        setStatus("live", "live (WebSocket)");
      });
    }

    handle(msg) {
      if (msg.id) {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.error) {
          p.reject(msg.error);
          return;
        }
        if (p.onResult) p.onResult(msg.result || {});
        p.resolve(msg.result || {});
        return;
      }
      switch (msg.type) {
        case "publication":
          if (msg.offset && this.pos) {
            if (msg.offset <= this.pos.offset) return; // already shown
            this.pos.offset = msg.offset;
          }
          showPublication(msg);
          break;
        case "ping":
          this.send({ method: "pong" });
          break;
        case "join":
        case "leave":
          showPresence(msg);
          break;
        case "unsubscribe":
          addLine("error", `unsubscribed by the server: ${msg.reason}`);
          break;
      }
    }

    onClose(ev) {
      for (const p of this.pending.values()) p.reject({ code: 0, message: "connection closed" });
      this.pending.clear();
      if (this.stopped) return;
      // 4500-4999: the server says retrying would fail the same way.
      if (ev.code >= 4500 && ev.code < 5000) {
        addLine("error", `disconnected: ${ev.reason || ev.code}`);
        setStatus("error", "disconnected");
        return;
      }
      if (ev.code >= 4000) addLine("system", `server asked to reconnect: ${ev.reason || ev.code}`);
      const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt++;
      setStatus("connecting", "reconnecting…");
      this.timer = setTimeout(() => this.open(), delay);
    }

    publish(data) {
      return this.call("publish", { channel: this.channel, data });
    }

    close() {
      this.stopped = true;
      clearTimeout(this.timer);
      this.ws.close(1000, "bye");
    }
  }

  // SSEConn receives with a stock EventSource, which reconnects by itself
  // and resumes from Last-Event-ID, and publishes with POST /publish.
  class SSEConn {
    constructor(channel) {
      this.channel = channel;
      setStatus("connecting", "connecting…");
      const es = new EventSource(`/sse?channel=${encodeURIComponent(channel)}`);
      this.es = es;
      this.lastOffset = 0; // offset of the last publication shown
      es.addEventListener("subscribed", (ev) => {
        const res = JSON.parse(ev.data);
        if (res.was_recovering && res.recovered) {
          const missed = res.offset - this.lastOffset;
          addLine("system", missed > 0 ? `reconnected: ${missed} missed message(s) follow` : "reconnected: nothing missed");
        } else if (res.was_recovering) {
          addLine("system", "reconnected, but the messages missed meanwhile are no longer in history");
        } else {
          addLine("system", `subscribed to ${channel}`);
        }
        setStatus("live", "live (SSE)");
      });
      // Publications are unnamed events, so they arrive as "message".
      es.onmessage = (ev) => {
        const pub = JSON.parse(ev.data);
        if (pub.offset) this.lastOffset = pub.offset;
        showPublication(pub);
      };
      es.addEventListener("join", (ev) => showPresence(JSON.parse(ev.data)));
      es.addEventListener("leave", (ev) => showPresence(JSON.parse(ev.data)));
      es.addEventListener("disconnect", (ev) => {
        const d = JSON.parse(ev.data);
        if (d.reconnect) {
          addLine("system", `server asked to reconnect: ${d.reason}`);
          setStatus("connecting", "reconnecting…");
          return;
        }
        es.close();
        addLine("error", `disconnected: ${d.reason}`);
        setStatus("error", "disconnected");
      });
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) {
          // EventSource hides the HTTP error; the usual cause is a channel
          // the server does not let anonymous clients read.
          addLine("error", "the server refused the stream (is this channel's namespace open?)");
          setStatus("error", "refused");
        } else {
          setStatus("connecting", "reconnecting…");
        }
      };
    }

    async publish(data) {
      const res = await fetch("/publish", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ channel: this.channel, data }),
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw body.error || { code: res.status, message: res.statusText };
      return body;
    }

    close() {
      this.es.close();
    }
  }

  function disconnect() {
    if (conn) conn.close();
    conn = null;
    ui.connect.textContent = "Connect";
    ui.channel.disabled = false;
    ui.transport.disabled = false;
    setStatus("idle", "not connected");
  }

  ui.connectForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (conn) {
      disconnect();
      addLine("system", "disconnected");
      return;
    }
    const channel = ui.channel.value.trim();
    if (!channel) return;
    ui.channel.disabled = true;
    ui.transport.disabled = true;
    ui.connect.textContent = "Disconnect";
    conn = ui.transport.value === "sse" ? new SSEConn(channel) : new WSConn(channel);
  });

  ui.publishForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = ui.text.value.trim();
    if (!text || !conn) return;
    ui.text.value = "";
    try {
      await conn.publish({ text });
    } catch (err) {
      addLine("error", `publish failed: ${errorText(err)}`);
      ui.text.value = text;
    }
    ui.text.focus();
  });

  // A channel in the URL fragment (#chat:room) preselects it, so a link can
  // bring people to the same room.
  if (location.hash.length > 1) ui.channel.value = decodeURIComponent(location.hash.slice(1));
})();
