import type { Client } from './client.js';
import { Emitter } from './emitter.js';
import { ErrorCodes, HeraldError } from './errors.js';
import type { Subscription } from './subscription.js';
import type { ClientInfo, IceServer, SignalEvent } from './types.js';

// Environment: the minimal shapes of the browser's WebRTC objects that the
// helper uses, so that it builds without the DOM library and tests can
// hand it fakes. In a browser they are RTCPeerConnection, RTCDataChannel,
// MediaStream and MediaStreamTrack themselves.

/* eslint-disable @typescript-eslint/no-explicit-any */
/** An RTCSessionDescriptionInit. */
export interface SessionDescriptionInit {
  type: 'offer' | 'answer' | 'pranswer' | 'rollback';
  sdp?: string;
}

/** An RTCIceCandidateInit. */
export interface IceCandidateInit {
  candidate?: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

/** What the helper needs of a MediaStreamTrack. */
export interface MediaStreamTrackLike {
  readonly id: string;
  readonly kind: string;
  enabled: boolean;
}

/** What the helper needs of a MediaStream. */
export interface MediaStreamLike {
  readonly id: string;
  getTracks(): MediaStreamTrackLike[];
}

/** What the helper needs of an RTCDataChannel. */
export interface DataChannelLike {
  readonly label: string;
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  binaryType: string;
  send(data: any): void;
  close(): void;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onbufferedamountlow: ((ev: any) => any) | null;
}

/** What the helper needs of an RTCPeerConnection. */
export interface PeerConnectionLike {
  readonly signalingState: string;
  readonly connectionState: string;
  readonly localDescription: { readonly type: string; readonly sdp: string } | null;
  setLocalDescription(description?: SessionDescriptionInit): Promise<void>;
  setRemoteDescription(description: SessionDescriptionInit): Promise<void>;
  addIceCandidate(candidate?: IceCandidateInit): Promise<void>;
  addTrack(track: MediaStreamTrackLike, ...streams: MediaStreamLike[]): unknown;
  createDataChannel(label: string, init?: { negotiated?: boolean; id?: number; ordered?: boolean }): DataChannelLike;
  restartIce(): void;
  close(): void;
  onnegotiationneeded: ((ev: any) => any) | null;
  onicecandidate: ((ev: any) => any) | null;
  ontrack: ((ev: any) => any) | null;
  onconnectionstatechange: ((ev: any) => any) | null;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** The RTCConfiguration fields a room may set. */
export interface PeerConfiguration {
  iceServers?: IceServer[];
  /** 'relay' uses the TURN server alone, hiding the peers' addresses from each other. */
  iceTransportPolicy?: 'all' | 'relay';
  bundlePolicy?: 'balanced' | 'max-bundle' | 'max-compat';
  iceCandidatePoolSize?: number;
}

/** An RTCPeerConnection constructor: the browser's, or a fake. */
export type PeerConnectionConstructor = new (configuration?: PeerConfiguration) => PeerConnectionLike;

/** Options of a PeerRoom; every field may be left out. */
export interface PeerRoomOptions {
  /** Local media to send to every peer: each of its tracks goes on each connection. */
  stream?: MediaStreamLike | null;
  /**
   * Set over the configuration the room makes, `{iceServers: <the
   * server's>, bundlePolicy: 'max-bundle'}`: `{iceTransportPolicy:
   * 'relay'}` forces the TURN relay, `{iceServers: […]}` replaces the
   * server's.
   */
  configuration?: PeerConfiguration;
  /**
   * Opens one data channel to each peer (ordered and reliable, negotiated
   * with id 0, so neither side waits for the other to create it). Every
   * member of the room must ask for it alike.
   */
  dataChannel?: boolean;
  /** The RTCPeerConnection implementation (default: the global one). */
  RTCPeerConnection?: PeerConnectionConstructor;
}

/** Another member of the room and this client's connection to it. */
export interface Peer {
  /** Its client id. */
  readonly id: string;
  readonly info: ClientInfo;
  readonly pc: PeerConnectionLike;
  /** The data channel, with `dataChannel` set, once negotiation began. */
  readonly channel: DataChannelLike | null;
  /** This side yields when both offer at once: the one whose client id sorts first. */
  readonly polite: boolean;
}

export interface PeerEvent {
  peer: Peer;
}

export interface PeerStateEvent {
  peer: Peer;
  /** The connection's connectionState. */
  state: string;
}

export interface PeerTrackEvent {
  peer: Peer;
  track: MediaStreamTrackLike;
  /** The remote streams the track belongs to: show streams[0] in a video element. */
  streams: readonly MediaStreamLike[];
}

export interface PeerChannelEvent {
  peer: Peer;
  channel: DataChannelLike;
}

export interface PeerMessageEvent {
  peer: Peer;
  /** A string, or an ArrayBuffer for binary messages. */
  data: unknown;
}

export interface PeerErrorEvent {
  /** The peer whose negotiation failed; absent for a failure of the room. */
  peer?: Peer;
  error: Error;
}

/** Events of a PeerRoom. */
export interface PeerRoomEvents {
  /** A connection to a member was made; negotiation follows by itself. */
  peerjoined: PeerEvent;
  peerstate: PeerStateEvent;
  track: PeerTrackEvent;
  channelopen: PeerChannelEvent;
  message: PeerMessageEvent;
  /** The member left (or this client reconnected with a new id); its connection is closed. */
  peerleft: PeerEvent;
  error: PeerErrorEvent;
}

/** The data of a signal, as docs/protocol.md gives it. */
interface SignalData {
  description?: SessionDescriptionInit;
  candidate?: IceCandidateInit | null;
}

/**
 * How long the polite side of a new connection waits for the other side's
 * offer before it offers itself: the other may have nothing to send.
 */
const OFFER_WAIT = 1000;

class RoomPeer implements Peer {
  channel: DataChannelLike | null = null;
  makingOffer = false;
  ignoreOffer = false;
  settingAnswer = false;
  /** The data channel and local tracks are on the connection. */
  attached = false;
  closed = false;
  offerWait: ReturnType<typeof setTimeout> | undefined;
  constructor(
    readonly id: string,
    readonly info: ClientInfo,
    readonly pc: PeerConnectionLike,
    readonly polite: boolean,
  ) {}
}

/**
 * A WebRTC mesh over a Herald room: one peer connection to each other
 * member of the channel, negotiated with the W3C "perfect negotiation"
 * pattern (webrtc-pc, "Perfect negotiation example") over the server's
 * directed signals. Joining subscribes the client to the channel, which
 * makes it a member; members that join later, and those that leave, come
 * and go with the channel's join and leave events. Connections use the
 * server's STUN and TURN servers. The client must be on WebSocket.
 *
 * ```ts
 * const room = new PeerRoom(client, 'call:abc', { stream, dataChannel: true });
 * room.on('track', (e) => (video.srcObject = e.streams[0]));
 * await room.join();
 * ```
 */
export class PeerRoom extends Emitter<PeerRoomEvents> {
  /** The room's channel. */
  readonly channel: string;
  private readonly client: Client;
  private readonly opts: PeerRoomOptions;
  private readonly PC: PeerConnectionConstructor | undefined;
  private sub: Subscription | null = null;
  private readonly byId = new Map<string, RoomPeer>();
  /**
   * Members that left while this client was in the room: a late signal
   * from one, or a presence list read before it left, must not open a new
   * connection. Its join event, should it come back, clears it.
   */
  private readonly gone = new Set<string>();
  private iceServers: IceServer[] = [];
  /** The client id iceServers were fetched under: TURN credentials name it. */
  private iceFor: string | null = null;
  /** Moves on at join, leave and every confirmation, so that a stale async step stops. */
  private seq = 0;

  constructor(client: Client, channel: string, options: PeerRoomOptions = {}) {
    super();
    this.client = client;
    this.channel = channel;
    this.opts = options;
    this.PC = options.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: PeerConnectionConstructor }).RTCPeerConnection;
  }

  /** The members this client has a connection to. */
  get peers(): Peer[] {
    return [...this.byId.values()];
  }

  /** The room's subscription while joined: publish, history and presence of the channel. */
  get subscription(): Subscription | null {
    return this.sub;
  }

  /**
   * Joins the room: fetches the ICE servers, subscribes to the channel and
   * resolves once subscribed. Connections to the members follow, each
   * announced by `peerjoined`. Rejects when the server refuses the channel
   * (the room is then left) or after timeout milliseconds. The room makes
   * the channel's subscription itself, so the client must have none.
   */
  async join(timeout?: number): Promise<void> {
    if (this.sub) throw new Error(`herald: room ${this.channel} is joined already`);
    if (!this.PC) throw new Error('herald: no RTCPeerConnection here: pass options.RTCPeerConnection');
    const seq = ++this.seq;
    await this.fetchIceServers();
    if (seq !== this.seq) throw new Error(`herald: room ${this.channel} was left while joining`);
    const sub = this.client.newSubscription(this.channel);
    this.sub = sub;
    sub.on('subscribing', () => {
      // Out of the room until subscribed again: the others see this client
      // leave and close their side.
      this.closeAll();
      this.gone.clear();
    });
    sub.on('subscribed', () => void this.sync(sub));
    sub.on('join', (e) => {
      this.gone.delete(e.info.client);
      this.addPeer(e.info);
    });
    sub.on('leave', (e) => this.removePeer(e.info.client));
    sub.on('signal', (e) => void this.onSignal(e));
    sub.on('unsubscribed', (e) => {
      if (!e.error) return;
      this.leave();
      this.emit('error', { error: e.error });
    });
    sub.subscribe();
    try {
      await sub.ready(timeout);
    } catch (err) {
      if (this.sub === sub) this.leave();
      throw err;
    }
  }

  /** Closes every connection and leaves the room (unsubscribes). join() may follow. */
  leave(): void {
    this.seq++;
    const sub = this.sub;
    this.sub = null;
    this.closeAll();
    this.gone.clear();
    if (sub) {
      sub.removeAllListeners();
      this.client.removeSubscription(sub);
    }
  }

  /** Sends data on every open data channel; returns to how many peers. */
  send(data: string | ArrayBuffer | ArrayBufferView): number {
    let n = 0;
    for (const p of this.byId.values()) {
      if (p.channel?.readyState !== 'open') continue;
      p.channel.send(data);
      n++;
    }
    return n;
  }

  private async fetchIceServers(): Promise<void> {
    this.iceServers = await this.client.iceServers();
    this.iceFor = this.client.clientId;
  }

  /** Connects to the members present at each confirmation of the subscription. */
  private async sync(sub: Subscription): Promise<void> {
    const seq = ++this.seq;
    try {
      // A reconnect brings a new client id, which needs new credentials.
      if (this.client.clientId !== this.iceFor) await this.fetchIceServers();
      if (seq !== this.seq) return;
      const { clients } = await sub.presence();
      if (seq !== this.seq) return;
      for (const info of Object.values(clients)) this.addPeer(info);
    } catch (err) {
      if (seq === this.seq) this.emit('error', { error: err as Error });
    }
  }

  private addPeer(info: ClientInfo): RoomPeer | null {
    const id = info.client;
    const me = this.client.clientId;
    if (!this.sub || !me || id === me || this.gone.has(id)) return null;
    const known = this.byId.get(id);
    if (known) return known;
    let pc: PeerConnectionLike;
    try {
      // One transport for media and data: before the answer, other
      // policies gather (and allocate TURN relays) for every section.
      pc = new this.PC!({ iceServers: this.iceServers, bundlePolicy: 'max-bundle', ...this.opts.configuration });
    } catch (err) {
      this.emit('error', { error: err as Error });
      return null;
    }
    const p = new RoomPeer(id, info, pc, me < id);
    this.byId.set(id, p);
    this.wire(p);
    // Offers that cross cost the polite side a rollback, which in Chromium
    // can leave its ICE gathering stuck for good; so on a new connection
    // the impolite side offers and the polite side waits for that offer.
    if (p.polite) p.offerWait = setTimeout(() => this.attach(p), OFFER_WAIT);
    else this.attach(p);
    this.emit('peerjoined', { peer: p });
    return p;
  }

  /** Puts the data channel and the local tracks on p's connection, which makes it negotiate. */
  private attach(p: RoomPeer): void {
    clearTimeout(p.offerWait);
    if (p.attached || p.closed) return;
    p.attached = true;
    const pc = p.pc;
    if (this.opts.dataChannel) {
      const ch = pc.createDataChannel('herald', { negotiated: true, id: 0 });
      ch.binaryType = 'arraybuffer';
      ch.onopen = () => {
        if (!p.closed) this.emit('channelopen', { peer: p, channel: ch });
      };
      ch.onmessage = (ev: { data: unknown }) => {
        if (!p.closed) this.emit('message', { peer: p, data: ev.data });
      };
      p.channel = ch;
    }
    const stream = this.opts.stream;
    if (stream) for (const track of stream.getTracks()) pc.addTrack(track, stream);
  }

  private wire(p: RoomPeer): void {
    const pc = p.pc;
    pc.onnegotiationneeded = async () => {
      if (p.closed) return;
      try {
        p.makingOffer = true;
        await pc.setLocalDescription();
        this.signalPeer(p, { description: description(pc.localDescription!) });
      } catch (err) {
        this.fail(p, err);
      } finally {
        p.makingOffer = false;
      }
    };
    pc.onicecandidate = (ev: { candidate: (IceCandidateInit & { toJSON?: () => IceCandidateInit }) | null }) => {
      if (p.closed) return;
      const c = ev.candidate;
      this.signalPeer(p, { candidate: c ? (c.toJSON?.() ?? c) : null });
    };
    pc.ontrack = (ev: { track: MediaStreamTrackLike; streams?: MediaStreamLike[] }) => {
      if (!p.closed) this.emit('track', { peer: p, track: ev.track, streams: ev.streams ?? [] });
    };
    pc.onconnectionstatechange = () => {
      if (p.closed) return;
      const state = pc.connectionState;
      // A path that stopped working may come back on fresh candidates;
      // the restart's offer goes through negotiation like any other.
      if (state === 'failed') pc.restartIce();
      this.emit('peerstate', { peer: p, state });
    };
  }

  /** Applies a signal from a member, the polite or the impolite way. */
  private async onSignal(e: SignalEvent): Promise<void> {
    const p = this.addPeer(e.from);
    const data = e.data as SignalData | null;
    if (!p || !data || typeof data !== 'object') return;
    const pc = p.pc;
    try {
      if (data.description) {
        // Added before the offer is applied, the tracks and channel go in
        // the answer.
        this.attach(p);
        const d = data.description;
        const readyForOffer = !p.makingOffer && (pc.signalingState === 'stable' || p.settingAnswer);
        const collision = d.type === 'offer' && !readyForOffer;
        // The impolite side keeps its own offer and drops the other's; the
        // polite side's setRemoteDescription rolls its own offer back.
        p.ignoreOffer = !p.polite && collision;
        if (p.ignoreOffer) return;
        p.settingAnswer = d.type === 'answer';
        try {
          await pc.setRemoteDescription(d);
        } finally {
          p.settingAnswer = false;
        }
        if (d.type === 'offer') {
          await pc.setLocalDescription();
          this.signalPeer(p, { description: description(pc.localDescription!) });
        }
      } else if ('candidate' in data) {
        try {
          await pc.addIceCandidate(data.candidate ?? undefined);
        } catch (err) {
          // Candidates of an offer this side ignored cannot apply.
          if (!p.ignoreOffer) throw err;
        }
      }
    } catch (err) {
      this.fail(p, err);
    }
  }

  /** Signals one peer; errors become error events. */
  private signalPeer(p: RoomPeer, data: SignalData): void {
    const sub = this.sub;
    if (!sub) return;
    sub.signal(p.id, data).catch((err: unknown) => {
      if (err instanceof HeraldError && err.code === ErrorCodes.NoRecipient) {
        // It left, or never was there when a presence list was read
        // before it left: the server knows better.
        if (this.byId.get(p.id) === p) this.removePeer(p.id);
        return;
      }
      this.fail(p, err);
    });
  }

  private fail(p: RoomPeer, err: unknown): void {
    if (p.closed) return;
    this.emit('error', { peer: p, error: err instanceof Error ? err : new Error(String(err)) });
  }

  private removePeer(id: string): void {
    this.gone.add(id);
    const p = this.byId.get(id);
    if (!p) return;
    this.byId.delete(id);
    this.close(p);
  }

  private closeAll(): void {
    const all = [...this.byId.values()];
    this.byId.clear();
    for (const p of all) this.close(p);
  }

  private close(p: RoomPeer): void {
    p.closed = true;
    clearTimeout(p.offerWait);
    p.pc.close();
    this.emit('peerleft', { peer: p });
  }
}

/** A local description as plain JSON, whatever object the implementation made. */
function description(d: { type: string; sdp: string }): SessionDescriptionInit {
  return { type: d.type as SessionDescriptionInit['type'], sdp: d.sdp };
}
