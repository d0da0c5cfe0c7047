import { CloseCodes, DisconnectError, isPermanentCloseCode } from '../errors.js';
import { httpCall, poll, query, toPublication, type WirePublication } from '../http.js';
import { formatPositionList, parsePositionList, type StreamPosition } from '../position.js';
import type { CommandMethod, EndReason, Transport, TransportHost, WantedSub } from '../transport.js';
import type { ClientInfo, EventSourceConstructor, EventSourceLike, FetchLike } from '../types.js';
import { byChannel, CHANGED, probeFresh, refused, requestEnd, SessionEnd, setKey, Signal, Throttle, tokenEnd } from './shared.js';

/** One planned stream: its channels in canonical order and where each resumes from. */
interface Plan {
  subs: WantedSub[];
  key: string;
  /** The stream resumes every channel from last_event_id. */
  withID: boolean;
  lastID: string;
}

type StreamEnd = typeof CHANGED | 'refresh' | EndReason;

/** The URL of an SSE stream for a plan. */
function streamURL(host: TransportHost, plan: Plan, token: string): string {
  const q: [string, string][] = plan.subs.map((s) => ['channel', s.channel]);
  if (token) q.push(['token', token]);
  for (const s of plan.subs) {
    const t = host.subscriptionToken(s.channel);
    if (t) q.push(['sub_token', t]);
  }
  if (plan.withID) q.push(['last_event_id', plan.lastID]);
  return `${host.baseURL}/sse?${query(q)}`;
}

/**
 * Carries every subscription on one Server-Sent Events stream (/sse) and
 * sends commands as HTTP requests (POST /publish, …). Adding or removing a
 * subscription reopens the stream with the new channel list, resuming every
 * channel from its position, as an EventSource reconnect with Last-Event-ID
 * does. The client, not EventSource, reconnects after a failure, so that
 * backoff, fallback and tokens work as on every transport; the stream's
 * position is passed in the last_event_id parameter.
 */
export class SSETransport implements Transport {
  readonly name = 'sse' as const;
  private closed = false;
  private connected = false;
  private readonly changed = new Signal();
  private dirty = false;
  private plan: Plan | null = null;
  private es: EventSourceLike | null = null;
  private finish: ((r: StreamEnd) => void) | null = null;

  constructor(
    private readonly host: TransportHost,
    private readonly ES: EventSourceConstructor,
    private readonly fetchFn: FetchLike,
  ) {}

  open(): void {
    this.run().catch((err: unknown) => this.end({ reason: `sse: ${(err as Error)?.message ?? err}`, error: err as Error }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopStream();
    this.changed.fire();
  }

  update(): void {
    this.dirty = true;
    this.changed.fire();
    const plan = this.plan;
    if (plan && this.finish && setKey(this.host.wanted()) !== plan.key) this.endStream(CHANGED);
  }

  unsubscribe(): void {
    // The stream is reopened without the channel: update follows.
  }

  call(method: CommandMethod, params: Record<string, unknown>): Promise<unknown> {
    return httpCall(this.host, this.fetchFn, method, params);
  }

  private end(r: EndReason): void {
    if (this.closed) return;
    this.closed = true;
    this.stopStream();
    this.host.ended(this, r);
  }

  private async run(): Promise<void> {
    const restarts = new Throttle();
    while (!this.closed) {
      this.dirty = false;
      const channels = this.host.wanted().map((s) => s.channel);
      try {
        await this.host.subscriptionTokens(channels);
        await probeFresh(this.host, this, this.fetchFn, true);
      } catch (err) {
        this.end(err instanceof SessionEnd ? err.end : requestEnd(err, 'sse'));
        return;
      }
      if (this.closed) return;
      if (this.dirty) {
        await restarts.next();
        continue;
      }
      const plan = this.makePlan();
      if (plan.subs.length === 0) {
        // Nothing to stream: no connection is needed until a subscription is.
        this.markConnected();
        await this.changed.wait();
        continue;
      }
      let token: string;
      try {
        token = await this.host.connectionToken();
      } catch (err) {
        this.end(tokenEnd(err));
        return;
      }
      if (this.closed) return;
      const r = await this.stream(plan, token);
      if (this.closed) return;
      if (r === CHANGED) {
        await restarts.next();
        continue;
      }
      if (r === 'refresh') {
        try {
          await this.host.refreshToken();
        } catch (err) {
          this.end(tokenEnd(err));
          return;
        }
        continue;
      }
      this.end(r);
      return;
    }
  }

  private markConnected(): void {
    if (this.connected || this.closed) return;
    this.connected = true;
    this.host.connected(this, {});
  }

  /**
   * Lists the wanted subscriptions in canonical order. The stream resumes
   * all of them from last_event_id when each has a position, else none.
   */
  private makePlan(): Plan {
    const subs = this.host
      .wanted()
      .filter((s) => s.position !== null || s.confirmedOnce || s.noHistory)
      .sort(byChannel);
    const withID = subs.length > 0 && subs.every((s) => s.position !== null);
    return {
      subs,
      key: setKey(subs),
      withID,
      lastID: withID ? formatPositionList(subs.map((s) => s.position as StreamPosition)) : '',
    };
  }

  private stopStream(): void {
    const es = this.es;
    this.es = null;
    if (es) {
      es.onopen = es.onmessage = es.onerror = null;
      es.close();
    }
    this.endStream(CHANGED);
  }

  private endStream(r: StreamEnd): void {
    const f = this.finish;
    this.finish = null;
    if (f) f(r);
  }

  /** Opens a stream for plan and reads it until it ends or the subscriptions change. */
  private stream(plan: Plan, token: string): Promise<StreamEnd> {
    return new Promise<StreamEnd>((resolve) => {
      let gotEvent = false;
      this.plan = plan;
      this.finish = (r) => {
        this.plan = null;
        const es = this.es;
        this.es = null;
        if (es) {
          es.onopen = es.onmessage = es.onerror = null;
          es.close();
        }
        resolve(r);
      };
      // A subscription may have changed while the stream was planned.
      if (setKey(this.host.wanted()) !== plan.key) {
        this.endStream(CHANGED);
        return;
      }
      let es: EventSourceLike;
      try {
        es = new this.ES(streamURL(this.host, plan, token), { withCredentials: this.host.options.withCredentials });
      } catch (err) {
        this.endStream({ reason: `sse: ${(err as Error)?.message ?? err}`, error: err as Error, transportFailure: true });
        return;
      }
      this.es = es;
      const index = new Map(plan.subs.map((s, i) => [s.channel, i]));
      const bySub = new Map(plan.subs.map((s) => [s.channel, s]));
      const parse = (ev: { data?: unknown }): Record<string, unknown> | null => {
        try {
          return JSON.parse(String(ev.data)) as Record<string, unknown>;
        } catch {
          this.endStream({ reason: 'malformed sse event' });
          return null;
        }
      };
      es.addEventListener('subscribed', (ev: { data?: unknown; lastEventId?: string }) => {
        if (this.es !== es) return;
        const d = parse(ev);
        if (!d) return;
        gotEvent = true;
        this.markConnected();
        const ch = String(d['channel']);
        const s = bySub.get(ch);
        if (!s) return;
        const recovered = !!d['recovered'];
        const epoch = typeof d['epoch'] === 'string' ? d['epoch'] : '';
        // The event's data holds the channel's newest position; the stream
        // continues from the event's id, which is where the server resumed it.
        let start: StreamPosition | null = epoch
          ? { epoch, offset: recovered && s.position ? s.position.offset : Number(d['offset'] ?? 0) }
          : null;
        if (ev.lastEventId) {
          try {
            start = parsePositionList(ev.lastEventId, plan.subs.length)[index.get(ch)!]!;
          } catch {
            // An id for another channel list: keep the data's position.
          }
        }
        let wasRecovering = !!d['was_recovering'];
        let rec = recovered;
        if (s.position && !plan.withID) {
          // The subscription had a position, but another channel of the
          // stream had none, so the stream could not resume: continuity is
          // broken for this one.
          wasRecovering = true;
          rec = false;
        }
        this.host.confirm(this, ch, s.gen, { position: start, recoverable: !!d['recoverable'], wasRecovering, recovered: rec });
      });
      es.onmessage = (ev: { data?: unknown }) => {
        if (this.es !== es) return;
        const d = parse(ev);
        if (!d) return;
        gotEvent = true;
        if (this.host.publication(this, toPublication(d as unknown as WirePublication)) === 'gap') {
          this.endStream({ reason: `gap in the offsets of ${String(d['channel'])}` });
        }
      };
      const presence = (kind: 'join' | 'leave') => (ev: { data?: unknown }) => {
        if (this.es !== es) return;
        const d = parse(ev);
        if (d) this.host.presence(this, kind, String(d['channel']), d['info'] as ClientInfo);
      };
      es.addEventListener('join', presence('join'));
      es.addEventListener('leave', presence('leave'));
      es.addEventListener('signal', (ev: { data?: unknown }) => {
        if (this.es !== es) return;
        const d = parse(ev);
        if (d) this.host.signal(this, String(d['channel']), d['from'] as ClientInfo, d['data']);
      });
      es.addEventListener('disconnect', (ev: { data?: unknown }) => {
        if (this.es !== es) return;
        const d = parse(ev);
        if (!d) return;
        const code = Number(d['code'] ?? 0);
        const reason = String(d['reason'] ?? 'disconnected');
        const permanent = isPermanentCloseCode(code) || d['reconnect'] === false;
        const r: EndReason = { reason, code, permanent };
        if (code === CloseCodes.TokenExpired) r.tokenExpired = true;
        if (permanent) r.error = new DisconnectError(code, reason);
        this.endStream(r);
      });
      es.addEventListener('refresh', () => {
        if (this.es !== es) return;
        // A stream cannot take a new token: reopen it with a fresh one,
        // resuming every channel. Without getToken the server ends the
        // stream at expiry (4505).
        if (this.host.canRefreshToken()) this.endStream('refresh');
      });
      es.onerror = () => {
        if (this.es !== es) return;
        // Take over from EventSource's own reconnect, which would neither
        // back off nor fall back nor bring a fresh token.
        this.es = null;
        es.onopen = es.onmessage = es.onerror = null;
        es.close();
        if (gotEvent) {
          this.endStream({ reason: 'sse stream lost' });
          return;
        }
        void this.diagnose(plan).then((r) => this.endStream(r));
      };
    });
  }

  /**
   * Finds out why a stream failed before its first event: EventSource tells
   * nothing of an HTTP error. A short poll of the same channels gets the
   * server's answer: a refusal of a channel or of the token, or nothing
   * wrong, which means the stream itself does not get through.
   */
  private async diagnose(plan: Plan): Promise<StreamEnd> {
    const subs = plan.subs.filter((s) => !s.noHistory);
    if (subs.length === 0) return { reason: 'sse stream failed', transportFailure: true };
    try {
      await poll(this.host, this.fetchFn, subs.map((s) => s.channel), '', 0);
    } catch (err) {
      if (this.closed) return CHANGED;
      return refused(this.host, this, this.fetchFn, subs, err, true, 'sse stream');
    }
    return { reason: 'sse stream failed while the server answers polls', transportFailure: true };
  }
}
