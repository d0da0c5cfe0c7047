import {
  ErrorCodes,
  HeraldError,
  HTTPStatusError,
  isTemporaryCode,
  isTokenExpired,
  isUnauthorized,
  UnauthorizedError,
} from '../errors.js';
import { poll, RequestFailedError } from '../http.js';
import { parsePositionList } from '../position.js';
import type { EndReason, Transport, TransportHost, WantedSub } from '../transport.js';
import type { FetchLike } from '../types.js';

/** A session goes on at once with a new set of subscriptions. */
export const CHANGED = 'changed' as const;

/** Classifies a failed stream or poll request that concerns no one channel. */
export function requestEnd(err: unknown, what: string): EndReason {
  const e = err instanceof Error ? err : new Error(String(err));
  if (isUnauthorized(err)) return { reason: `${what}: ${e.message}`, error: e, permanent: true };
  if (isTokenExpired(err)) {
    // Retried with a fresh token already, where one could be had.
    return { reason: `${what}: ${e.message}`, error: e, permanent: true };
  }
  if (err instanceof HeraldError) return { reason: `${what}: ${e.message}`, error: e, code: err.code };
  if (err instanceof RequestFailedError || err instanceof HTTPStatusError) {
    // No answer, or a proxy's: this transport does not get through.
    return { reason: `${what}: ${e.message}`, error: e, transportFailure: true };
  }
  return { reason: `${what}: ${e.message}`, error: e };
}

/**
 * Finds where each new subscription without a position starts, with a short
 * poll from "now", which also checks that the server accepts the channel
 * (name, namespace, permission) without subscribing anything. The stream or
 * poll that follows resumes from there. On SSE (sse set) a channel without
 * history has no position and is left to start from "now"; on polling,
 * which needs history, that is a refusal. Throws an EndReason-carrying
 * error when the session must end.
 */
export async function probeFresh(host: TransportHost, t: Transport, fetchFn: FetchLike, sse: boolean): Promise<void> {
  const fresh = host
    .wanted()
    .filter((s) => s.position === null && s.confirmedOn === null && !(sse && (s.confirmedOnce || s.noHistory)));
  for (const s of fresh) {
    try {
      const ans = await poll(host, fetchFn, [s.channel], '', 0);
      host.setStart(t, s.channel, s.gen, parsePositionList(ans.next, 1)[0]!, false);
    } catch (err) {
      if (err instanceof HeraldError && !isUnauthorized(err) && !isTokenExpired(err)) {
        if (err.code === ErrorCodes.NotAvailable && sse) {
          host.setStart(t, s.channel, s.gen, null, true); // no history: the stream starts it from "now"
          continue;
        }
        if (err.code === ErrorCodes.NotAvailable || !isTemporaryCode(err.code)) {
          host.refuse(t, s.channel, s.gen, err);
          continue;
        }
      }
      throw new SessionEnd(requestEnd(err, 'probe'));
    }
  }
}

/** An error that carries why a session ends. */
export class SessionEnd extends Error {
  constructor(readonly end: EndReason) {
    super(end.reason);
    this.name = 'SessionEnd';
  }
}

/**
 * Handles a stream open or poll the server refused with err. Refusals that
 * concern one channel end the subscriptions they concern: the one not yet
 * accepted when only one is, else each that a poll of its own finds
 * refused. Returns CHANGED when it ended some (the caller goes on at once
 * without them), and why the session ends otherwise.
 */
export async function refused(
  host: TransportHost,
  t: Transport,
  fetchFn: FetchLike,
  list: readonly WantedSub[],
  err: unknown,
  sse: boolean,
  what: string,
): Promise<typeof CHANGED | EndReason> {
  if (!(err instanceof HeraldError) || isUnauthorized(err) || isTokenExpired(err)) return requestEnd(err, what);
  if (isTemporaryCode(err.code) && !(err.code === ErrorCodes.NotAvailable && !sse)) return requestEnd(err, what);
  if (err.code === ErrorCodes.InvalidPosition) {
    // Positions this client made itself were refused: resuming is
    // impossible, so start over from "now", and say so.
    for (const s of list) host.dropPosition(t, s.channel, s.gen);
    return CHANGED;
  }
  if (err.code === ErrorCodes.LimitExceeded && list.length > 0) {
    // Too many channels for one stream or poll: refuse the newest
    // subscription, then try again with the others.
    const newest = list.reduce((a, b) => (b.seq > a.seq ? b : a));
    host.refuse(t, newest.channel, newest.gen, err);
    return CHANGED;
  }
  let candidates = list.filter((s) => !s.confirmedOnce);
  if (candidates.length === 0) candidates = [...list];
  if (candidates.length === 1) {
    host.refuse(t, candidates[0]!.channel, candidates[0]!.gen, err);
    return CHANGED;
  }
  let found = false;
  for (const s of candidates) {
    try {
      await poll(host, fetchFn, [s.channel], '', 0);
    } catch (e) {
      if (e instanceof HeraldError && !(isTemporaryCode(e.code) && !(e.code === ErrorCodes.NotAvailable && !sse))) {
        host.refuse(t, s.channel, s.gen, e);
        found = true;
      }
    }
  }
  return found ? CHANGED : requestEnd(err, what);
}

/** Sorts subscriptions by channel, bytewise: the order of position strings. */
export function byChannel(a: WantedSub, b: WantedSub): number {
  return a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0;
}

/** A key naming a set of subscriptions at their generations. */
export function setKey(subs: readonly WantedSub[]): string {
  return subs
    .map((s) => `${s.channel} ${s.gen}`)
    .sort()
    .join('\n');
}

/** A promise that a change, or the end of the session, resolves. */
export class Signal {
  private waiters: Array<() => void> = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  /** Waits for the signal or ms milliseconds, whichever comes first. */
  waitFor(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }
  fire(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** How a session ends when getToken failed: for good when it threw UnauthorizedError. */
export function tokenEnd(err: unknown): EndReason {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    reason: `connection token: ${e.message}`,
    error: e,
    tokenFailure: true,
    permanent: err instanceof UnauthorizedError || isUnauthorized(err),
  };
}

/**
 * Bounds how often a session starts over because its subscriptions
 * changed: changes come in bursts (several subscribe() calls at once), and
 * a loop that restarts at once, forever, would starve the page.
 */
export class Throttle {
  private count = 0;
  private since = 0;
  async next(): Promise<void> {
    const now = Date.now();
    if (now - this.since > 1000) {
      this.since = now;
      this.count = 0;
    }
    if (++this.count > 10) await new Promise((r) => setTimeout(r, 50));
  }
}
