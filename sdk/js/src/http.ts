import { HeraldError, HTTPStatusError, isTokenExpired } from './errors.js';
import { parsePositionList } from './position.js';
import type { TransportHost } from './transport.js';
import type { ClientInfo, FetchLike, Publication } from './types.js';

/** A request that got no answer: the network, or a transport blocked on the way. */
export class RequestFailedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message);
    this.name = 'RequestFailedError';
    if (options && 'cause' in options) (this as { cause?: unknown }).cause = options.cause;
  }
}

/** A request aborted by its caller (not a timeout). */
export class AbortedError extends Error {
  constructor() {
    super('aborted');
    this.name = 'AbortedError';
  }
}

/** Builds a query string from repeated parameters, in the order given. */
export function query(params: ReadonlyArray<readonly [string, string]>): string {
  return params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

export interface RequestOptions {
  method: 'GET' | 'POST';
  /** Path and query, e.g. "/poll?channel=a". A function, so a retry picks up fresh subscription tokens. */
  path: () => string;
  body?: string;
  /** Bounds the whole request, in milliseconds. */
  timeout: number;
  signal?: AbortSignal;
  /** The channels whose subscription tokens the request carries, to refresh them on 109. */
  channels?: readonly string[];
}

/**
 * Makes one HTTP request with the connection token and the configured
 * headers, and returns its JSON answer. When the server answers that a
 * token expired and a fresh one can be had, it fetches fresh tokens and
 * sends the request once more: a request refused for an expired token did
 * nothing on the server. Throws a HeraldError or HTTPStatusError for an
 * answer other than 200, RequestFailedError when there was no answer, and
 * AbortedError when signal aborted it.
 */
export async function request(host: TransportHost, fetchFn: FetchLike, o: RequestOptions): Promise<unknown> {
  let token = await host.connectionToken();
  for (let retried = false; ; retried = true) {
    try {
      return await requestOnce(host, fetchFn, o, token);
    } catch (err) {
      const subs = o.channels ?? [];
      const canRefresh = host.canRefreshToken() || subs.some((ch) => host.subscriptionToken(ch) !== undefined);
      if (retried || !isTokenExpired(err) || !canRefresh) throw err;
      if (host.canRefreshToken()) token = await host.refreshToken();
      host.staleSubscriptionTokens(subs);
      await host.subscriptionTokens(subs);
    }
  }
}

async function requestOnce(host: TransportHost, fetchFn: FetchLike, o: RequestOptions, token: string): Promise<unknown> {
  const ctl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort();
  }, o.timeout);
  const onAbort = () => ctl.abort();
  if (o.signal) {
    if (o.signal.aborted) ctl.abort();
    else o.signal.addEventListener('abort', onAbort);
  }
  const headers: Record<string, string> = { ...host.options.headers };
  if (o.body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers['Authorization'] = `Bearer ${token}`;
  const url = host.baseURL + o.path();
  try {
    let resp;
    let text: string;
    try {
      resp = await fetchFn(url, {
        method: o.method,
        headers,
        body: o.body,
        signal: ctl.signal,
        credentials: host.options.withCredentials ? 'include' : 'same-origin',
        cache: 'no-store',
      });
      text = await resp.text();
    } catch (err) {
      if (o.signal?.aborted) throw new AbortedError();
      if (timedOut) throw new RequestFailedError(`${o.method} ${o.path().split('?')[0]}: no answer within ${o.timeout} ms`);
      throw new RequestFailedError(`${o.method} ${o.path().split('?')[0]}: ${(err as Error)?.message ?? err}`, { cause: err });
    }
    if (!resp.ok) throw responseError(resp.status, text);
    try {
      return JSON.parse(text);
    } catch {
      throw new HTTPStatusError(resp.status, `malformed JSON: ${text}`);
    }
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/** Turns an error answer into a HeraldError from its JSON body, or an HTTPStatusError. */
export function responseError(status: number, body: string): Error {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: number; message?: string } };
    if (parsed?.error && typeof parsed.error.code === 'number' && parsed.error.code !== 0) {
      return new HeraldError(parsed.error.code, parsed.error.message ?? '');
    }
  } catch {
    // not JSON: a proxy answered
  }
  return new HTTPStatusError(status, body.trim());
}

/** Posts a command's params to its client endpoint (/publish, /history, …). */
export async function httpCall(host: TransportHost, fetchFn: FetchLike, method: string, params: Record<string, unknown>): Promise<unknown> {
  return request(host, fetchFn, {
    method: 'POST',
    path: () => `/${method}`,
    body: JSON.stringify(params),
    timeout: host.options.timeout,
  });
}

/** A publication as the server sends it. */
export interface WirePublication {
  channel: string;
  offset?: number;
  data: unknown;
  info?: ClientInfo;
  tags?: Record<string, string>;
  time: number;
}

export function toPublication(w: WirePublication): Publication {
  const p: Publication = { channel: w.channel, offset: w.offset ?? 0, data: w.data, time: w.time };
  if (w.info) p.info = w.info;
  if (w.tags) p.tags = w.tags;
  return p;
}

/** The answer of GET /poll. */
export interface PollAnswer {
  publications: WirePublication[];
  next: string;
  recovered: boolean;
  unrecovered?: string[];
}

/**
 * Makes one GET /poll for channels (in canonical order) from since ("" for
 * "from now"), waiting up to timeoutSec seconds on the server (0: a short
 * poll).
 */
export async function poll(
  host: TransportHost,
  fetchFn: FetchLike,
  channels: readonly string[],
  since: string,
  timeoutSec: number,
  signal?: AbortSignal,
): Promise<PollAnswer> {
  const path = () => {
    const q: [string, string][] = channels.map((ch) => ['channel', ch]);
    if (since) q.push(['since', since]);
    if (timeoutSec > 0) q.push(['timeout', String(timeoutSec)]);
    for (const ch of channels) {
      const t = host.subscriptionToken(ch);
      if (t) q.push(['sub_token', t]);
    }
    return `/poll?${query(q)}`;
  };
  const ans = (await request(host, fetchFn, {
    method: 'GET',
    path,
    // The server answers a long poll within its timeout; the margin covers the network.
    timeout: timeoutSec > 0 ? timeoutSec * 1000 + 15000 : host.options.timeout,
    signal,
    channels,
  })) as PollAnswer;
  if (!ans || !Array.isArray(ans.publications) || typeof ans.next !== 'string') {
    throw new HTTPStatusError(200, 'malformed poll answer');
  }
  parsePositionList(ans.next, channels.length);
  return ans;
}
