import {
  ConnectionLostError,
  DisconnectError,
  ErrorCodes,
  HeraldError,
  isPermanentCloseCode,
  isTemporaryCode,
  isUnauthorized,
  TimeoutError,
} from '../errors.js';
import { toPublication, type WirePublication } from '../http.js';
import type { CommandMethod, ConnectInfo, EndReason, Transport, TransportHost } from '../transport.js';
import { tokenEnd } from './shared.js';
import type { ClientInfo, WebSocketConstructor, WebSocketLike } from '../types.js';

/** At most this many commands go in one message (the server's limit is 128). */
const MAX_COMMANDS_PER_MESSAGE = 128;

interface Pending {
  resolve(result: unknown): void;
  reject(err: Error): void;
  timer?: ReturnType<typeof setTimeout>;
}

/** The connect command's result. */
interface ConnectReply {
  client?: string;
  user?: string;
  ping?: number;
  pong?: number;
  data?: unknown;
}

/** A frame from the server: a reply (id set) or a push (type set). */
interface Frame extends Partial<WirePublication> {
  id?: number;
  result?: unknown;
  error?: { code: number; message: string };
  type?: string;
  code?: number;
  reason?: string;
  epoch?: string;
  recoverable?: boolean;
  was_recovering?: boolean;
  recovered?: boolean;
  expires_in?: number;
  /** A signal's sender. */
  from?: ClientInfo;
}

interface SubscribeResult {
  epoch: string;
  offset: number;
  recoverable: boolean;
  was_recovering?: boolean;
  recovered?: boolean;
}

/** The WebSocket URL of a base http(s) URL. */
export function webSocketURL(base: string): string {
  return base.replace(/^http/, 'ws') + '/ws';
}

/**
 * Runs the protocol over one WebSocket (/ws): commands with ids and their
 * replies, pushes, heartbeats. Every wanted subscription is subscribed in
 * one batch after the connect reply, each resuming from its position.
 */
export class WebSocketTransport implements Transport {
  readonly name = 'websocket' as const;
  private ws: WebSocketLike | null = null;
  private closed = false;
  private connected = false;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  /** Channels a subscribe was sent for on this connection, with the subscription's gen then. */
  private readonly sent = new Map<string, number>();
  private heartbeat: ReturnType<typeof setTimeout> | undefined;
  private heartbeatWindow = 0;
  private refreshing = false;

  constructor(
    private readonly host: TransportHost,
    private readonly WS: WebSocketConstructor,
  ) {}

  open(): void {
    void this.start();
  }

  private async start(): Promise<void> {
    let token: string;
    try {
      token = await this.host.connectionToken();
    } catch (err) {
      this.end(tokenEnd(err));
      return;
    }
    if (this.closed) return;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(webSocketURL(this.host.baseURL));
    } catch (err) {
      this.end({ reason: `websocket: ${(err as Error)?.message ?? err}`, error: err as Error, transportFailure: true });
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.closed) return;
      const params: Record<string, unknown> = {};
      if (token) params['token'] = token;
      if (this.host.options.name) params['name'] = this.host.options.name;
      if (this.host.options.data !== undefined) params['data'] = this.host.options.data;
      const subs = this.host.serverPositions();
      if (Object.keys(subs).length > 0) params['subs'] = subs;
      this.command('connect', params, this.host.options.timeout).then(
        (res) => this.onConnectReply(res as ConnectReply),
        (err: Error) => {
          if (err instanceof HeraldError) {
            const expired = err.code === ErrorCodes.TokenExpired;
            this.end({
              reason: 'connect refused',
              error: err,
              code: err.code,
              permanent: err.code === ErrorCodes.Unauthorized || (expired && !this.host.canRefreshToken()),
              tokenExpired: expired,
            });
          } else {
            this.end({ reason: `connect: ${err.message}`, error: err, transportFailure: !this.connected });
          }
        },
      );
    };
    ws.onmessage = (ev: { data: unknown }) => this.onMessage(ev.data);
    ws.onerror = () => {
      // onclose follows with the details.
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => this.onClose(ev.code ?? 1006, ev.reason ?? '');
  }

  private onConnectReply(res: ConnectReply): void {
    if (this.closed) return;
    this.connected = true;
    if (res.ping && res.ping > 0) {
      // The server pings every `ping` seconds and waits `pong` seconds for
      // the answer: silence for longer means the connection is dead, even
      // if TCP has not noticed.
      this.heartbeatWindow = (res.ping + (res.pong ?? 0)) * 1000;
      this.alive();
    }
    const info: ConnectInfo = {};
    if (res.client) info.client = res.client;
    if (res.user) info.user = res.user;
    if (res.data !== undefined) info.data = res.data;
    this.host.connected(this, info);
    this.update();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.teardown(new ConnectionLostError());
    try {
      this.ws?.close(1000, 'client closed');
    } catch {
      // already closing
    }
  }

  private teardown(err: Error): void {
    clearTimeout(this.heartbeat);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  /** Ends the session and reports why, once. */
  private end(r: EndReason): void {
    if (this.closed) return;
    this.closed = true;
    this.teardown(new ConnectionLostError());
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      try {
        this.ws.close(1000, 'client closed');
      } catch {
        // already closing
      }
    }
    this.host.ended(this, r);
  }

  private onClose(code: number, reason: string): void {
    if (this.closed) return;
    if (code >= 4000 && code <= 4999) {
      const r: EndReason = { reason: reason || `closed with ${code}`, code, permanent: isPermanentCloseCode(code) };
      if (code === 4505) r.tokenExpired = true;
      if (r.permanent) r.error = new DisconnectError(code, reason);
      this.end(r);
      return;
    }
    // Codes outside the private range (going away, abnormal closure,
    // proxies) are network trouble.
    this.end({
      reason: this.connected ? `connection closed (${code}${reason ? ' ' + reason : ''})` : `websocket handshake failed (${code})`,
      code,
      transportFailure: !this.connected,
    });
  }

  private alive(): void {
    if (this.heartbeatWindow <= 0 || this.closed) return;
    clearTimeout(this.heartbeat);
    this.heartbeat = setTimeout(() => {
      this.end({ reason: `no heartbeat from the server within ${this.heartbeatWindow} ms` });
    }, this.heartbeatWindow);
  }

  private send(msg: string): boolean {
    try {
      this.ws!.send(msg);
      return true;
    } catch (err) {
      this.end({ reason: `write: ${(err as Error)?.message ?? err}`, error: err as Error });
      return false;
    }
  }

  /** Registers a command and returns its frame. */
  private frame(method: string, params: Record<string, unknown>, p: Pending, timeout: number): string {
    this.nextId++;
    const id = this.nextId;
    if (timeout > 0) {
      p.timer = setTimeout(() => {
        this.pending.delete(id);
        p.reject(new TimeoutError(`${method}: no reply within ${timeout} ms`));
      }, timeout);
    }
    this.pending.set(id, p);
    return JSON.stringify({ id, method, params });
  }

  private command(method: string, params: Record<string, unknown>, timeout: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.closed || !this.ws) {
        reject(new ConnectionLostError());
        return;
      }
      this.send(this.frame(method, params, { resolve, reject }, timeout));
    });
  }

  call(method: CommandMethod, params: Record<string, unknown>): Promise<unknown> {
    if (!this.connected) return Promise.reject(new ConnectionLostError('not connected'));
    return this.command(method, params, this.host.options.timeout);
  }

  update(): void {
    if (!this.connected || this.closed) return;
    const wanted = this.host.wanted().filter((s) => s.confirmedOn !== this && this.sent.get(s.channel) !== s.gen);
    if (wanted.length === 0) return;
    for (const s of wanted) this.sent.set(s.channel, s.gen);
    void this.subscribeAll(wanted.map((s) => s.channel));
  }

  /** Subscribes channels in batches, once those with a getToken hold a fresh token. */
  private async subscribeAll(channels: string[]): Promise<void> {
    try {
      await this.host.subscriptionTokens(channels);
    } catch (err) {
      this.end({ reason: 'subscription token', error: err as Error });
      return;
    }
    if (this.closed) return;
    const byChannel = new Map(this.host.wanted().map((s) => [s.channel, s]));
    const frames: string[] = [];
    for (const ch of channels) {
      const s = byChannel.get(ch);
      // Left out: unsubscribed meanwhile, or subscribed again (its own call sends it).
      if (!s || this.sent.get(ch) !== s.gen || s.confirmedOn === this) continue;
      const params: Record<string, unknown> = { channel: ch };
      const token = this.host.subscriptionToken(ch);
      if (token) params['token'] = token;
      const from = s.position;
      if (from) {
        params['recover'] = true;
        params['epoch'] = from.epoch;
        params['offset'] = from.offset;
      }
      const gen = s.gen;
      const p: Pending = {
        resolve: (raw) => this.onSubscribeReply(ch, gen, from?.offset ?? 0, raw as SubscribeResult),
        reject: (err) => this.onSubscribeError(ch, gen, err),
      };
      frames.push(this.frame('subscribe', params, p, 0));
    }
    for (let i = 0; i < frames.length; i += MAX_COMMANDS_PER_MESSAGE) {
      if (!this.send(frames.slice(i, i + MAX_COMMANDS_PER_MESSAGE).join('\n'))) return;
    }
  }

  private onSubscribeReply(channel: string, gen: number, fromOffset: number, r: SubscribeResult): void {
    if (this.sent.get(channel) !== gen) return;
    // The stream continues from the position asked for when it was
    // recovered (the missed publications follow this reply), else from the
    // channel's newest position.
    const offset = r.recovered ? fromOffset : r.offset;
    this.host.confirm(this, channel, gen, {
      position: r.epoch ? { epoch: r.epoch, offset } : null,
      recoverable: !!r.recoverable,
      wasRecovering: !!r.was_recovering,
      recovered: !!r.recovered,
    });
  }

  private onSubscribeError(channel: string, gen: number, err: Error): void {
    if (this.closed || this.sent.get(channel) !== gen) return;
    if (!(err instanceof HeraldError)) return;
    if (isTemporaryCode(err.code)) {
      // The server or this connection is in trouble; a fresh connection
      // after a backoff subscribes everything again.
      this.host.subscriptionError(this, channel, err);
      this.end({ reason: `subscribe ${channel}`, error: err });
      return;
    }
    this.sent.delete(channel);
    this.host.refuse(this, channel, gen, err);
  }

  unsubscribe(channel: string): void {
    if (!this.sent.has(channel)) return;
    this.sent.delete(channel);
    if (!this.connected || this.closed) return;
    // Errors (not subscribed, connection lost) change nothing: the client
    // has forgotten the subscription already.
    this.command('unsubscribe', { channel }, this.host.options.timeout).catch(() => undefined);
  }

  private onMessage(data: unknown): void {
    if (this.closed) return;
    if (typeof data !== 'string') {
      this.end({ reason: 'binary message from the server', permanent: false });
      return;
    }
    this.alive();
    for (const line of data.split('\n')) {
      if (this.closed) return;
      if (line.trim() === '') continue;
      let f: Frame;
      try {
        f = JSON.parse(line) as Frame;
      } catch (err) {
        this.end({ reason: 'malformed frame from the server', error: err as Error });
        return;
      }
      this.handle(f);
    }
  }

  private handle(f: Frame): void {
    if (f.id) {
      const p = this.pending.get(f.id);
      if (!p) return; // its caller gave up waiting
      this.pending.delete(f.id);
      clearTimeout(p.timer);
      if (f.error) p.reject(new HeraldError(f.error.code, f.error.message));
      else p.resolve(f.result ?? {});
      return;
    }
    const channel = f.channel ?? '';
    switch (f.type) {
      case 'publication':
        if (this.host.publication(this, toPublication(f as WirePublication)) === 'gap') {
          this.end({ reason: `gap in the offsets of ${channel}` });
        }
        return;
      case 'join':
      case 'leave':
        this.host.presence(this, f.type, channel, f.info as ClientInfo);
        return;
      case 'signal':
        this.host.signal(this, channel, f.from as ClientInfo, f.data);
        return;
      case 'ping':
        this.send('{"method":"pong"}');
        return;
      case 'subscribed':
        this.host.serverSubscribed(this, channel, {
          position: f.epoch ? { epoch: f.epoch, offset: f.offset ?? 0 } : null,
          recoverable: !!f.recoverable,
          wasRecovering: !!f.was_recovering,
          recovered: !!f.recovered,
        });
        return;
      case 'unsubscribe':
        this.onUnsubscribePush(channel, f.code ?? 0, f.reason ?? '');
        return;
      case 'refresh':
        void this.refresh(f.expires_in ?? 0);
        return;
    }
  }

  /** The server ended one subscription: for good, or for a temporary reason, by subscribing again. */
  private onUnsubscribePush(channel: string, code: number, reason: string): void {
    const gen = this.sent.get(channel);
    const s = this.host.wanted().find((w) => w.channel === channel);
    if (gen === undefined || !s || s.gen !== gen) {
      if (this.host.serverUnsubscribed(this, channel, code, reason)) {
        this.end({ reason: `server-side subscription ${channel}: ${reason}`, code });
      }
      return;
    }
    const err = new HeraldError(code, reason);
    if (!isTemporaryCode(code)) {
      this.sent.delete(channel);
      this.host.refuse(this, channel, gen, err);
      return;
    }
    this.sent.delete(channel);
    this.host.resubscribing(this, channel, err);
    this.update();
  }

  /**
   * Answers the server's request for a fresh connection token. Without
   * getToken there is nothing to send: the server closes the connection at
   * expiry (4505).
   */
  private async refresh(expiresIn: number): Promise<void> {
    if (!this.host.canRefreshToken() || this.refreshing) return;
    this.refreshing = true;
    try {
      const token = await this.host.refreshToken();
      if (this.closed) return;
      await this.command('refresh', { token }, Math.max(1000, Math.min(this.host.options.timeout, expiresIn * 1000)));
    } catch (err) {
      if (this.closed) return;
      if (isUnauthorized(err)) {
        this.end({ reason: 'token refresh', error: err as Error, permanent: true });
        return;
      }
      // The server closes the connection at expiry; the next one brings a
      // fresh token.
      this.host.error(this, 'refresh', err as Error);
    } finally {
      this.refreshing = false;
    }
  }
}
