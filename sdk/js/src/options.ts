import type { Transport, TransportHost } from './transport.js';
import { PollTransport } from './transports/poll.js';
import { probeLongPoll, probeSSE, probeWebSocket } from './transports/probe.js';
import { SSETransport } from './transports/sse.js';
import { WebSocketTransport } from './transports/websocket.js';
import {
  TRANSPORTS,
  type EventSourceConstructor,
  type FetchLike,
  type NetworkMonitor,
  type TransportName,
  type WebSocketConstructor,
} from './types.js';

/** Options of a Client. Every field but `url` (in a browser, even that) may be left out. */
export interface ClientOptions {
  /**
   * The server's base URL, such as "https://rt.example.com" or
   * "http://127.0.0.1:8000/herald"; ws:// and wss:// are accepted, and in a
   * browser a relative URL or none at all means the page's origin. The
   * transports' paths (/ws, /sse, /poll, /publish, …) are appended.
   */
  url?: string;
  /**
   * The transports to use, in order of preference (default: websocket, sse,
   * longpoll, shortpoll). One that fails to connect is skipped for the
   * next; a better one is tried again every `upgradeInterval`.
   */
  transports?: readonly TransportName[];
  /** The connection token (a JWT from the application's backend); none means anonymous. */
  token?: string;
  /**
   * Returns a fresh connection token. Called before every connection but
   * the first (that one too without `token`), when the server asks for a
   * refresh before the token expires, and when it refuses one as expired.
   * Throwing UnauthorizedError stops the client; other errors are retried
   * with backoff.
   */
  getToken?: () => Promise<string>;
  /** Sent when connecting over WebSocket, to tell clients apart in server logs. */
  name?: string;
  /**
   * A JSON value sent with every WebSocket connection, reconnections
   * included. A server with a connect proxy hands it to the application's
   * backend with a client that brings no token; the backend's answer is the
   * `connected` event's `data` and `connectData`. SSE and polling do not send it.
   */
  data?: unknown;
  /** The first reconnect delay's ceiling, in ms (200). */
  minReconnectDelay?: number;
  /** The largest reconnect delay's ceiling, in ms (20000). */
  maxReconnectDelay?: number;
  /** How long a command waits for its answer, in ms (10000). */
  timeout?: number;
  /** A transport not connected within this many ms counts as failed (5000). */
  transportTimeout?: number;
  /** How often to try a better transport than the one in use, in ms (60000; 0: never). */
  upgradeInterval?: number;
  /** How long one long poll waits on the server, in ms; whole seconds from 1 to 60 (25000). */
  pollTimeout?: number;
  /** The pause between short polls that found nothing, in ms (1000). */
  pollInterval?: number;
  /** Headers added to every fetch request (polls and HTTP commands; EventSource and WebSocket cannot send headers). */
  headers?: Record<string, string>;
  /** Send cookies cross-origin (fetch credentials "include", EventSource withCredentials). */
  withCredentials?: boolean;
  /** The WebSocket implementation (default: the global one; null: none). */
  WebSocket?: WebSocketConstructor | null;
  /** The EventSource implementation (default: the global one; null: none). */
  EventSource?: EventSourceConstructor | null;
  /** The fetch implementation (default: the global one). */
  fetch?: FetchLike;
  /** Where online/offline events come from (default: the browser's window; null: none). */
  network?: NetworkMonitor | null;
  /** Replaces transport implementations, for tests and special environments. */
  transportImpls?: Partial<Record<TransportName, TransportImpl>>;
  /** A uniform random number in [0, 1) for the reconnect jitter (Math.random). */
  random?: () => number;
}

/** An implementation of a transport: sessions, and a probe for upgrades. */
export interface TransportImpl {
  /** Makes one session. */
  create(host: TransportHost): Transport;
  /** Checks, without disturbing the running session, that this transport gets through. */
  probe?(host: TransportHost, timeout: number): Promise<boolean>;
  /** Commands go over HTTP, so they need no open session. */
  readonly httpCommands?: boolean;
}


function defaultNetwork(): NetworkMonitor | null {
  const g = globalThis as { window?: { addEventListener?: unknown }; navigator?: { onLine?: boolean } };
  const w = g.window as { addEventListener(t: string, l: () => void): void; removeEventListener(t: string, l: () => void): void } | undefined;
  if (!w || typeof w.addEventListener !== 'function' || !g.navigator || !('onLine' in g.navigator)) return null;
  return {
    get onLine() {
      return g.navigator?.onLine !== false;
    },
    addEventListener: (t, l) => w.addEventListener(t, l),
    removeEventListener: (t, l) => w.removeEventListener(t, l),
  };
}

/** Validates url and returns it with an http(s) scheme and no trailing slash. */
export function baseURL(url: string | undefined): string {
  const loc = (globalThis as { location?: { href?: string } }).location?.href;
  if (!url && !loc) throw new Error('herald: options.url is required');
  let u: URL;
  try {
    u = new URL(url || '/', loc);
  } catch {
    throw new Error(`herald: options.url ${JSON.stringify(url)} is not a URL`);
  }
  switch (u.protocol) {
    case 'http:':
    case 'https:':
      break;
    case 'ws:':
      u.protocol = 'http:';
      break;
    case 'wss:':
      u.protocol = 'https:';
      break;
    default:
      throw new Error(`herald: options.url ${JSON.stringify(url)}: scheme must be http, https, ws or wss`);
  }
  if (u.search || u.hash) throw new Error(`herald: options.url ${JSON.stringify(url)}: no query or fragment allowed`);
  return (u.origin + u.pathname).replace(/\/+$/, '');
}

/** Options with defaults applied and checked. */
export interface Resolved {
  base: string;
  timeout: number;
  transportTimeout: number;
  upgradeInterval: number;
  pollTimeout: number;
  pollInterval: number;
  withCredentials: boolean;
  headers: Record<string, string>;
  name?: string;
  /** A copy of options.data, taken through JSON, when given. */
  data?: unknown;
  minDelay: number;
  maxDelay: number;
  network: NetworkMonitor | null;
  fetchFn: FetchLike | undefined;
  impls: Partial<Record<TransportName, TransportImpl>>;
  /** The transports to try, in order: those asked for that are available. */
  order: TransportName[];
}

/** Applies defaults to options and checks them; throws on a bad one. */
export function resolveOptions(options: ClientOptions): Resolved {
  const num = (v: number | undefined, d: number, name: string) => {
    if (v === undefined) return d;
    if (!(v >= 0) || !Number.isFinite(v)) throw new Error(`herald: options.${name} must be a number >= 0`);
    return v;
  };
  const g = globalThis as { fetch?: FetchLike };
  const fetchFn = options.fetch ?? (typeof g.fetch === 'function' ? (g.fetch.bind(globalThis) as FetchLike) : undefined);
  const impls = { ...defaultImpls(options, fetchFn), ...(options.transportImpls ?? {}) };
  const wanted = options.transports ?? TRANSPORTS;
  for (const t of wanted) {
    if (!TRANSPORTS.includes(t)) throw new Error(`herald: unknown transport ${JSON.stringify(t)}`);
  }
  const order = [...new Set(wanted)].filter((t) => impls[t]);
  if (order.length === 0) {
    throw new Error('herald: no transport available: give a WebSocket, EventSource or fetch implementation');
  }
  const minDelay = num(options.minReconnectDelay, 200, 'minReconnectDelay');
  const r: Resolved = {
    base: baseURL(options.url),
    timeout: num(options.timeout, 10_000, 'timeout') || 10_000,
    transportTimeout: num(options.transportTimeout, 5_000, 'transportTimeout') || 5_000,
    upgradeInterval: num(options.upgradeInterval, 60_000, 'upgradeInterval'),
    pollTimeout: Math.max(1000, Math.min(60_000, num(options.pollTimeout, 25_000, 'pollTimeout'))),
    pollInterval: num(options.pollInterval, 1_000, 'pollInterval'),
    withCredentials: !!options.withCredentials,
    headers: { ...(options.headers ?? {}) },
    minDelay,
    maxDelay: Math.max(minDelay, num(options.maxReconnectDelay, 20_000, 'maxReconnectDelay')),
    network: options.network === undefined ? defaultNetwork() : options.network,
    fetchFn,
    impls,
    order,
  };
  if (options.name) r.name = options.name;
  if (options.data !== undefined) {
    let json: string | undefined;
    try {
      json = JSON.stringify(options.data);
    } catch {
      // Reported below with the other values JSON cannot carry.
    }
    if (json === undefined) throw new Error('herald: options.data must be a JSON value');
    r.data = JSON.parse(json);
  }
  return r;
}

/** The transports the environment (or the options) can run. */
function defaultImpls(options: ClientOptions, fetchFn: FetchLike | undefined): Partial<Record<TransportName, TransportImpl>> {
  const g = globalThis as { WebSocket?: WebSocketConstructor; EventSource?: EventSourceConstructor };
  const WS = options.WebSocket === undefined ? g.WebSocket : options.WebSocket;
  const ES = options.EventSource === undefined ? g.EventSource : options.EventSource;
  const out: Partial<Record<TransportName, TransportImpl>> = {};
  if (WS) {
    out.websocket = {
      create: (host) => new WebSocketTransport(host, WS),
      probe: (host, timeout) => probeWebSocket(host, WS, timeout),
    };
  }
  if (fetchFn) {
    if (ES) {
      out.sse = {
        create: (host) => new SSETransport(host, ES, fetchFn),
        probe: (host, timeout) => probeSSE(host, ES, timeout),
        httpCommands: true,
      };
    }
    out.longpoll = {
      create: (host) => new PollTransport(host, fetchFn, true),
      probe: (host, timeout) => probeLongPoll(host, fetchFn, timeout),
      httpCommands: true,
    };
    out.shortpoll = { create: (host) => new PollTransport(host, fetchFn, false), httpCommands: true };
  }
  return out;
}
