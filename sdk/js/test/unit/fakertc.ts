// Fakes for unit tests of PeerRoom: a Herald server that keeps WebRTC rooms
// (presence, join and leave, directed signals) and peer connections that
// follow the browser's signaling state machine (implicit rollback, the
// operations chain, negotiationneeded) and "connect" to each other through
// their session descriptions.
import type { TransportImpl } from '../../src/client.js';
import { ErrorCodes, HeraldError } from '../../src/errors.js';
import type { CommandMethod, Transport, TransportHost } from '../../src/transport.js';
import type { ClientInfo } from '../../src/types.js';
import type {
  DataChannelLike,
  IceCandidateInit,
  MediaStreamLike,
  MediaStreamTrackLike,
  PeerConfiguration,
  PeerConnectionLike,
  SessionDescriptionInit,
} from '../../src/webrtc.js';

/** Rooms of connected sessions, as the server keeps them. */
export class RoomServer {
  readonly sessions = new Set<RoomSession>();
  private readonly seqs = new Map<string, number>();
  /** While set, signals wait in `held` instead of being delivered. */
  holdSignals = false;
  private held: Array<() => void> = [];
  iceServerCalls = 0;
  /** Listed by presence though gone: a list read just before they left. */
  phantoms: ClientInfo[] = [];

  /** The transport of a client of user; its sessions get ids user-1, user-2, … */
  impl(user: string): TransportImpl {
    return { create: (host) => new RoomSession(host, this, this.nextId(user), user) };
  }

  private nextId(user: string): string {
    const n = (this.seqs.get(user) ?? 0) + 1;
    this.seqs.set(user, n);
    return `${user}-${n}`;
  }

  members(channel: string): RoomSession[] {
    return [...this.sessions].filter((s) => s.rooms.has(channel));
  }

  /** Delivers the signals held so far, in order. */
  release(): void {
    this.holdSignals = false;
    const h = this.held;
    this.held = [];
    for (const f of h) queueMicrotask(f);
  }

  deliver(f: () => void, signal = false): void {
    if (signal && this.holdSignals) this.held.push(f);
    else queueMicrotask(f);
  }

  presence(from: RoomSession, channel: string, kind: 'join' | 'leave'): void {
    for (const m of this.members(channel)) {
      if (m !== from) this.deliver(() => m.push(kind, channel, from.info));
    }
  }
}

export class RoomSession implements Transport {
  readonly name = 'websocket' as const;
  readonly rooms = new Set<string>();
  readonly info: ClientInfo;
  private open_ = false;

  constructor(
    readonly host: TransportHost,
    private readonly server: RoomServer,
    readonly id: string,
    user: string,
  ) {
    this.info = { client: id, user };
  }

  open(): void {
    queueMicrotask(() => {
      this.open_ = true;
      this.server.sessions.add(this);
      this.host.connected(this, { client: this.id });
      this.update();
    });
  }

  update(): void {
    if (!this.open_) return;
    for (const s of this.host.wanted()) {
      if (this.rooms.has(s.channel)) continue;
      if (!s.channel.startsWith('call:')) {
        const err = new HeraldError(ErrorCodes.PermissionDenied, `permission denied: ${s.channel}`);
        queueMicrotask(() => this.host.refuse(this, s.channel, s.gen, err));
        continue;
      }
      this.rooms.add(s.channel);
      this.host.confirm(this, s.channel, s.gen, { position: null, recoverable: false, wasRecovering: false, recovered: false });
      this.server.presence(this, s.channel, 'join');
    }
  }

  unsubscribe(channel: string): void {
    if (!this.rooms.delete(channel)) return;
    this.server.presence(this, channel, 'leave');
  }

  close(): void {
    if (!this.open_) return;
    this.open_ = false;
    this.server.sessions.delete(this);
    for (const ch of this.rooms) this.server.presence(this, ch, 'leave');
    this.rooms.clear();
  }

  /**
   * The server ends a subscription for a temporary reason; the client's
   * subscribe to make it again is in flight until update().
   */
  suspend(channel: string): void {
    this.rooms.delete(channel);
    this.server.presence(this, channel, 'leave');
    this.host.resubscribing(this, channel, new HeraldError(ErrorCodes.NotAvailable, 'try again'));
  }

  /** The connection breaks. */
  drop(): void {
    this.close();
    this.host.ended(this, { reason: 'dropped' });
  }

  push(kind: 'join' | 'leave', channel: string, info: ClientInfo): void {
    if (this.open_ && this.rooms.has(channel)) this.host.presence(this, kind, channel, info);
  }

  async call(method: CommandMethod, params: Record<string, unknown>): Promise<unknown> {
    const channel = String(params['channel']);
    switch (method) {
      case 'ice_servers':
        this.server.iceServerCalls++;
        return { ice_servers: [{ urls: ['turn:127.0.0.1:3478?transport=udp'], username: `9:${this.id}`, credential: 'c' }], ttl: 60 };
      case 'presence':
        return { clients: Object.fromEntries([...this.server.members(channel).map((m) => m.info), ...this.server.phantoms].map((i) => [i.client, i])) };
      case 'signal': {
        if (!this.rooms.has(channel)) throw new HeraldError(ErrorCodes.NotSubscribed, 'not subscribed');
        const to = this.server.members(channel).find((m) => m.id === params['to']);
        if (!to) throw new HeraldError(ErrorCodes.NoRecipient, 'recipient not found');
        // The server passes data through as JSON.
        const data: unknown = JSON.parse(JSON.stringify(params['data']));
        this.server.deliver(() => {
          if (to.open_ && to.rooms.has(channel)) to.host.signal(to, channel, this.info, data);
        }, true);
        return {};
      }
      default:
        throw new HeraldError(ErrorCodes.MethodNotFound, method);
    }
  }
}

export class FakeTrack implements MediaStreamTrackLike {
  enabled = true;
  constructor(
    readonly id: string,
    readonly kind: string,
  ) {}
}

export class FakeStream implements MediaStreamLike {
  constructor(
    readonly id: string,
    private readonly tracks: FakeTrack[],
  ) {}
  getTracks(): FakeTrack[] {
    return [...this.tracks];
  }
}

/** A local stream of one audio and one video track. */
export function camera(name: string): FakeStream {
  return new FakeStream(`${name}-stream`, [new FakeTrack(`${name}-audio`, 'audio'), new FakeTrack(`${name}-video`, 'video')]);
}

class FakeChannel implements DataChannelLike {
  readyState = 'connecting';
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  binaryType = 'blob';
  remote: FakeChannel | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onbufferedamountlow: ((ev: unknown) => void) | null = null;
  constructor(readonly label: string) {}
  send(data: unknown): void {
    if (this.readyState !== 'open') throw new Error('InvalidStateError: channel not open');
    const to = this.remote;
    setTimeout(() => to?.readyState === 'open' && to.onmessage?.({ data }), 0);
  }
  open(remote: FakeChannel): void {
    if (this.readyState !== 'connecting') return;
    this.remote = remote;
    this.readyState = 'open';
    this.onopen?.({});
  }
  close(): void {
    this.readyState = 'closed';
  }
}

/** What a fake session description says: who made it and what it sends. */
interface FakeSDP {
  pc: number;
  tracks: Array<{ id: string; kind: string; stream: string }>;
  channel: boolean;
  /** Which round of ICE it belongs to: an ICE restart moves it on. */
  ice: number;
}

/** Makes fake peer connections that find each other. */
export class FakeRTC {
  readonly all: FakePC[] = [];
  /** The constructor to pass as options.RTCPeerConnection. */
  readonly RTCPeerConnection: new (configuration?: PeerConfiguration) => FakePC;

  constructor() {
    const rtc = this;
    this.RTCPeerConnection = class extends FakePC {
      constructor(configuration?: PeerConfiguration) {
        super(rtc, configuration ?? {});
      }
    };
  }
}

type Track = { id: string; kind: string; stream: string };

export class FakePC implements PeerConnectionLike {
  readonly uid: number;
  signalingState = 'stable';
  connectionState = 'new';
  localDescription: { type: string; sdp: string } | null = null;
  remoteDescription: SessionDescriptionInit | null = null;
  readonly candidates: Array<IceCandidateInit | undefined> = [];
  readonly remoteTracks: Track[] = [];
  rollbacks = 0;
  restarts = 0;
  offers = 0;
  onnegotiationneeded: ((ev: unknown) => void) | null = null;
  onicecandidate: ((ev: { candidate: IceCandidateInit | null }) => void) | null = null;
  ontrack: ((ev: { track: MediaStreamTrackLike; streams: MediaStreamLike[] }) => void) | null = null;
  onconnectionstatechange: ((ev: unknown) => void) | null = null;

  private readonly tracks: Track[] = [];
  private channel: FakeChannel | null = null;
  private version = 0;
  private negotiated = 0;
  private offered = 0;
  private ice = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private nnScheduled = false;

  constructor(
    private readonly rtc: FakeRTC,
    readonly configuration: PeerConfiguration,
  ) {
    this.uid = rtc.all.length;
    rtc.all.push(this);
  }

  addTrack(track: MediaStreamTrackLike, ...streams: MediaStreamLike[]): unknown {
    this.tracks.push({ id: track.id, kind: track.kind, stream: streams[0]?.id ?? '' });
    this.changed();
    return {};
  }

  createDataChannel(label: string, init?: { negotiated?: boolean; id?: number }): DataChannelLike {
    if (!init?.negotiated || init.id !== 0) throw new Error('the fake does in-band data channels only as negotiated id 0');
    this.channel = new FakeChannel(label);
    this.changed();
    return this.channel;
  }

  restartIce(): void {
    this.restarts++;
    this.ice++;
    this.changed();
  }

  close(): void {
    this.signalingState = 'closed';
    this.connectionState = 'closed';
    this.channel?.close();
  }

  /** The path breaks for good. */
  fail(): void {
    this.connectionState = 'failed';
    this.onconnectionstatechange?.({});
  }

  setLocalDescription(d?: SessionDescriptionInit): Promise<void> {
    if (d) throw new Error('the fake takes no explicit description');
    return this.op(() => {
      if (this.signalingState === 'stable') {
        this.offers++;
        this.offered = this.version;
        this.localDescription = { type: 'offer', sdp: this.sdp() };
        this.signalingState = 'have-local-offer';
      } else if (this.signalingState === 'have-remote-offer') {
        this.localDescription = { type: 'answer', sdp: this.sdp() };
        // Answering attaches this side's tracks to the offer's sections.
        this.negotiated = this.version;
        this.stable();
      } else {
        throw new Error(`InvalidStateError: setLocalDescription in ${this.signalingState}`);
      }
      this.gather();
    });
  }

  setRemoteDescription(d: SessionDescriptionInit): Promise<void> {
    return this.op(() => {
      if (d.type === 'offer') {
        if (this.signalingState === 'have-local-offer') {
          this.rollbacks++;
          this.localDescription = null;
        } else if (this.signalingState !== 'stable') {
          throw new Error(`InvalidStateError: offer in ${this.signalingState}`);
        }
        this.remoteDescription = d;
        this.signalingState = 'have-remote-offer';
        this.tracksOf(d);
      } else if (d.type === 'answer') {
        if (this.signalingState !== 'have-local-offer') throw new Error(`InvalidStateError: answer in ${this.signalingState}`);
        this.remoteDescription = d;
        this.negotiated = this.offered;
        this.tracksOf(d);
        this.stable();
      } else {
        throw new Error(`the fake does not take ${d.type}`);
      }
    });
  }

  addIceCandidate(c?: IceCandidateInit): Promise<void> {
    return this.op(() => {
      if (!this.remoteDescription) throw new Error('InvalidStateError: no remote description');
      const mine = (JSON.parse(this.remoteDescription.sdp!) as FakeSDP).ice;
      if (c && c.candidate !== `candidate:${this.peerOf()?.uid} ice ${mine}`) throw new Error(`OperationError: unknown candidate ${c.candidate}`);
      this.candidates.push(c);
      this.connect();
    });
  }

  /** Runs f after every operation before it, as browsers chain them. */
  private op(f: () => void): Promise<void> {
    const p = this.chain.then(() => {
      if (this.signalingState === 'closed') throw new Error('InvalidStateError: closed');
      f();
    });
    this.chain = p.catch(() => undefined);
    return p;
  }

  private sdp(): string {
    const s: FakeSDP = { pc: this.uid, tracks: this.tracks, channel: !!this.channel, ice: this.ice };
    return JSON.stringify(s);
  }

  private peerOf(): FakePC | undefined {
    return this.remoteDescription ? this.rtc.all[(JSON.parse(this.remoteDescription.sdp!) as FakeSDP).pc] : undefined;
  }

  private tracksOf(d: SessionDescriptionInit): void {
    for (const t of (JSON.parse(d.sdp!) as FakeSDP).tracks) {
      if (this.remoteTracks.some((r) => r.id === t.id)) continue;
      this.remoteTracks.push(t);
      const stream = new FakeStream(t.stream, []);
      this.ontrack?.({ track: new FakeTrack(t.id, t.kind), streams: [stream] });
    }
  }

  /** Trickles one candidate of the current ICE round, then the end of gathering. */
  private gather(): void {
    const candidate = { candidate: `candidate:${this.uid} ice ${this.ice}`, sdpMid: '0', sdpMLineIndex: 0 };
    setTimeout(() => {
      if (this.signalingState === 'closed') return;
      this.onicecandidate?.({ candidate });
      this.onicecandidate?.({ candidate: null });
    }, 0);
  }

  private stable(): void {
    this.signalingState = 'stable';
    this.connect();
    if (this.version > this.negotiated) this.schedule();
  }

  /** Connected once stable with the other side's candidate of this round. */
  private connect(): void {
    const peer = this.peerOf();
    if (this.signalingState !== 'stable' || !peer || this.connectionState === 'connected') return;
    const round = (JSON.parse(this.remoteDescription!.sdp!) as FakeSDP).ice;
    if (!this.candidates.some((c) => c?.candidate === `candidate:${peer.uid} ice ${round}`)) return;
    this.connectionState = 'connected';
    this.onconnectionstatechange?.({});
    if (this.channel && peer.channel && peer.connectionState === 'connected') {
      this.channel.open(peer.channel);
      peer.channel.open(this.channel);
    }
  }

  /** Something to negotiate: negotiationneeded follows. */
  private changed(): void {
    this.version++;
    this.schedule();
  }

  /** Fires negotiationneeded as a task, if still stable with something to negotiate then. */
  private schedule(): void {
    if (this.nnScheduled) return;
    this.nnScheduled = true;
    setTimeout(() => {
      this.nnScheduled = false;
      if (this.signalingState === 'stable' && this.version > this.negotiated) this.onnegotiationneeded?.({});
    }, 0);
  }
}
