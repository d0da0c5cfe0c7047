import { poll, query } from '../http.js';
import { formatPositionList, type StreamPosition } from '../position.js';
import type { TransportHost } from '../transport.js';
import type { EventSourceConstructor, FetchLike, WebSocketConstructor } from '../types.js';
import { byChannel } from './shared.js';
import { webSocketURL } from './websocket.js';

/**
 * Checks, without disturbing the running session, that a WebSocket gets
 * through: the handshake, then a connect command answered with a result.
 */
export async function probeWebSocket(host: TransportHost, WS: WebSocketConstructor, timeout: number): Promise<boolean> {
  let token: string;
  try {
    token = await host.connectionToken();
  } catch {
    return false;
  }
  return new Promise<boolean>((resolve) => {
    let ws: { close(code?: number): void } | null = null;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      resolve(ok);
      try {
        ws?.close(1000);
      } catch {
        // already closed
      }
    };
    const timer = setTimeout(() => done(false), timeout);
    try {
      const s = new WS(webSocketURL(host.baseURL));
      ws = s;
      s.onopen = () => s.send(JSON.stringify({ id: 1, method: 'connect', params: token ? { token } : {} }));
      s.onmessage = (ev: { data?: unknown }) => {
        for (const line of String(ev.data).split('\n')) {
          try {
            const f = JSON.parse(line) as { id?: number; result?: unknown };
            if (f.id === 1) {
              done(f.result !== undefined);
              return;
            }
          } catch {
            done(false);
            return;
          }
        }
      };
      s.onerror = () => done(false);
      s.onclose = () => done(false);
    } catch {
      done(false);
    }
  });
}

/**
 * Checks that an SSE stream gets through, buffering proxies included: a
 * stream of the wanted channels must deliver its first event. With no
 * channel there is nothing to stream, and nothing to check.
 */
export async function probeSSE(host: TransportHost, ES: EventSourceConstructor, timeout: number): Promise<boolean> {
  const channels = host
    .wanted()
    .filter((s) => !s.noHistory || s.confirmedOnce)
    .map((s) => s.channel);
  if (channels.length === 0) return true;
  let token: string;
  try {
    token = await host.connectionToken();
  } catch {
    return false;
  }
  const q: [string, string][] = channels.map((ch) => ['channel', ch]);
  if (token) q.push(['token', token]);
  for (const ch of channels) {
    const t = host.subscriptionToken(ch);
    if (t) q.push(['sub_token', t]);
  }
  return new Promise<boolean>((resolve) => {
    let es: { close(): void } | null = null;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      es?.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeout);
    try {
      const s = new ES(`${host.baseURL}/sse?${query(q)}`, { withCredentials: host.options.withCredentials });
      es = s;
      s.addEventListener('subscribed', () => done(true));
      s.onerror = () => done(false);
    } catch {
      done(false);
    }
  });
}

/**
 * Checks that a long poll gets its answer: one that the server holds for a
 * second when nothing is new, which proxies that cut held requests fail.
 * With no channel to poll there is nothing to check.
 */
export async function probeLongPoll(host: TransportHost, fetchFn: FetchLike, timeout: number): Promise<boolean> {
  const list = host
    .wanted()
    .filter((s) => s.position !== null)
    .sort(byChannel);
  if (list.length === 0) return true;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeout);
  try {
    const since = formatPositionList(list.map((s) => s.position as StreamPosition));
    await poll(host, fetchFn, list.map((s) => s.channel), since, 1, abort.signal);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
