import { AbortedError, httpCall, poll, toPublication, type PollAnswer } from '../http.js';
import { formatPositionList, parsePositionList, type StreamPosition } from '../position.js';
import type { CommandMethod, Transport, TransportHost, WantedSub } from '../transport.js';
import type { FetchLike } from '../types.js';
import { byChannel, CHANGED, probeFresh, refused, requestEnd, SessionEnd, setKey, Signal, Throttle } from './shared.js';

/**
 * Runs one poll loop (GET /poll) for all subscriptions: each poll names
 * every channel with its position (`since`), and the answer's `next` is
 * where the following poll starts. The server keeps no state between polls.
 * Long polls wait on the server for something new; short polls ask every
 * pollInterval. Polling reads history, so ephemeral publications and
 * join/leave events never reach it.
 */
export class PollTransport implements Transport {
  readonly name: 'longpoll' | 'shortpoll';
  private closed = false;
  private connected = false;
  /**
   * A long poll got its answer. The first poll of a session answers at
   * once, so connecting proves little of long polling: proxies that cut
   * held requests let it through and fail every long poll after it.
   */
  private longPollAnswered = false;
  private readonly changed = new Signal();
  private dirty = false;
  /** The subscriptions the poll in flight carries, and how to abort it. */
  private inflight: { key: string; abort: AbortController } | null = null;

  constructor(
    private readonly host: TransportHost,
    private readonly fetchFn: FetchLike,
    private readonly long: boolean,
  ) {
    this.name = long ? 'longpoll' : 'shortpoll';
  }

  open(): void {
    this.run().catch((err: unknown) => this.end({ reason: `poll: ${(err as Error)?.message ?? err}`, error: err as Error }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inflight?.abort.abort();
    this.changed.fire();
  }

  update(): void {
    this.dirty = true;
    this.changed.fire();
    // A long poll is cancelled when the wanted subscriptions change, so the
    // next one includes them without waiting for this one to time out.
    if (this.inflight && setKey(this.host.wanted()) !== this.inflight.key) {
      this.inflight.abort.abort();
    }
  }

  unsubscribe(): void {
    // The next poll leaves the channel out: update follows.
  }

  call(method: CommandMethod, params: Record<string, unknown>): Promise<unknown> {
    return httpCall(this.host, this.fetchFn, method, params);
  }

  private end(r: Parameters<TransportHost['ended']>[1]): void {
    if (this.closed) return;
    this.closed = true;
    if (r.transportFailure && this.connected && this.long && !this.longPollAnswered) r = { ...r, unproven: true };
    this.host.ended(this, r);
  }

  private markConnected(): void {
    if (this.connected || this.closed) return;
    this.connected = true;
    this.host.connected(this, {});
  }

  private async run(): Promise<void> {
    const o = this.host.options;
    const restarts = new Throttle();
    while (!this.closed) {
      this.dirty = false;
      try {
        await this.host.subscriptionTokens(this.host.wanted().map((s) => s.channel));
        await probeFresh(this.host, this, this.fetchFn, false);
      } catch (err) {
        this.end(err instanceof SessionEnd ? err.end : requestEnd(err, 'poll'));
        return;
      }
      if (this.closed) return;
      if (this.dirty) {
        await restarts.next();
        continue;
      }
      const list = this.host
        .wanted()
        .filter((s) => s.position !== null)
        .sort(byChannel);
      if (list.length === 0) {
        this.markConnected();
        await this.changed.wait();
        continue;
      }
      // A poll that confirms subscriptions answers at once, so subscribe()
      // does not wait a whole long poll for its confirmation.
      const unconfirmed = list.some((s) => s.confirmedOn !== this);
      const timeout = this.long && !unconfirmed ? Math.max(1, Math.min(60, Math.round(o.pollTimeout / 1000))) : 0;
      const abort = new AbortController();
      // Every wanted subscription is in list (the probes gave each a
      // position, or ended it), so any change to the wanted set shows.
      this.inflight = { key: setKey(this.host.wanted()), abort };
      let ans: PollAnswer;
      try {
        const since = formatPositionList(list.map((s) => s.position as StreamPosition));
        ans = await poll(this.host, this.fetchFn, list.map((s) => s.channel), since, timeout, abort.signal);
      } catch (err) {
        if (this.closed) return;
        if (err instanceof AbortedError) {
          await restarts.next(); // the subscriptions changed
          continue;
        }
        const r = await refused(this.host, this, this.fetchFn, list, err, false, 'poll');
        if (this.closed) return;
        if (r === CHANGED) {
        await restarts.next();
        continue;
      }
        this.end(r);
        return;
      } finally {
        this.inflight = null;
      }
      if (this.closed) return;
      if (timeout > 0) this.longPollAnswered = true;
      this.markConnected();
      if (!this.apply(list, ans)) return;
      if (ans.publications.length > 0 || timeout > 0) continue; // more may be waiting; a long poll waits by itself
      // Nothing new: pause before the next short poll (a long poll that
      // confirmed subscriptions goes on at once).
      if (this.long) continue;
      await this.changed.waitFor(o.pollInterval);
    }
  }

  /**
   * Delivers one answer: confirmations first, so that each precedes its
   * subscription's publications, then the publications in order, then the
   * positions to poll from next. Returns false when the session ended.
   */
  private apply(list: WantedSub[], ans: PollAnswer): boolean {
    const next = parsePositionList(ans.next, list.length);
    const unrecovered = new Set(ans.unrecovered ?? []);
    list.forEach((s, i) => {
      const lost = unrecovered.has(s.channel);
      if (s.confirmedOn !== this) {
        this.host.confirm(this, s.channel, s.gen, {
          position: lost ? next[i]! : s.position,
          recoverable: true,
          wasRecovering: true,
          recovered: !lost,
        });
      } else if (lost) {
        // Continuity broke between two polls (history expired, epoch
        // changed): say so, as a resubscribe would.
        this.host.confirm(this, s.channel, s.gen, { position: next[i]!, recoverable: true, wasRecovering: true, recovered: false });
      }
    });
    for (const p of ans.publications) {
      if (this.closed) return false;
      if (this.host.publication(this, toPublication(p)) === 'gap') {
        this.end({ reason: `gap in the offsets of ${p.channel}` });
        return false;
      }
    }
    // Only subscriptions confirmed on this session and unchanged since the
    // poll move on; the host checks the generation.
    const current = new Map(this.host.wanted().map((s) => [s.channel, s]));
    list.forEach((s, i) => {
      const now = current.get(s.channel);
      if (now && now.gen === s.gen && now.confirmedOn === this && now.position !== null) {
        this.host.setStart(this, s.channel, s.gen, next[i]!, false);
      }
    });
    return !this.closed;
  }
}
