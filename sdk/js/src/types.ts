import type { StreamPosition } from './position.js';

/** The transports, from the most to the least capable. */
export type TransportName = 'websocket' | 'sse' | 'longpoll' | 'shortpoll';

/** Every transport, in the default order of preference. */
export const TRANSPORTS: readonly TransportName[] = ['websocket', 'sse', 'longpoll', 'shortpoll'];

/** The client's connection state. */
export type ClientState = 'disconnected' | 'connecting' | 'connected';

/** A subscription's state. */
export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

/** A connected client, as presence and join/leave events describe it. */
export interface ClientInfo {
  client: string;
  user: string;
  /** The `info` claim of the client's connection token, if any. */
  info?: unknown;
}

/** One publication of a channel. */
export interface Publication {
  channel: string;
  /** The publication's offset in the channel; 0 for ephemeral ones. */
  offset: number;
  /** The epoch of the channel's stream the offset counts in; absent for ephemeral ones. */
  epoch?: string;
  /** Any JSON value. */
  data: unknown;
  /** The WebSocket client that published it; absent for server API and HTTP publications. */
  info?: ClientInfo;
  tags?: Record<string, string>;
  /** When the server accepted it, in Unix milliseconds. */
  time: number;
}

/** Options of a publish. */
export interface PublishOptions {
  /** Deliver live only, without storing it (typing indicators, cursors). */
  ephemeral?: boolean;
  /** Makes a retried publish safe: the server stores one publication per key. */
  idempotencyKey?: string;
  tags?: Record<string, string>;
}

/** Where the server stored a publication; both zero-valued when ephemeral. */
export interface PublishResult {
  epoch: string;
  offset: number;
}

/** Options of a history read. */
export interface HistoryOptions {
  /** Publications after this position. */
  since?: StreamPosition;
  /** At most this many (0 or absent: the server's maximum). */
  limit?: number;
  /** Newest first. */
  reverse?: boolean;
}

/** A page of a channel's history and the channel's newest position. */
export interface HistoryResult {
  publications: Publication[];
  epoch: string;
  offset: number;
}

/** Who is subscribed to a channel, by client id. */
export interface PresenceResult {
  clients: Record<string, ClientInfo>;
}

export interface PresenceStatsResult {
  numClients: number;
  numUsers: number;
}

/**
 * A STUN or TURN server in the form of the browser's RTCIceServer, so the
 * list {@link Client.iceServers} returns goes into an RTCConfiguration as it is.
 */
export interface IceServer {
  urls: string | string[];
  /** TURN only: a short-lived user name the server made for this client. */
  username?: string;
  credential?: string;
}

/** A signal another member of a WebRTC room sent to this client alone. */
export interface SignalEvent {
  /** The room. */
  channel: string;
  /** The sender; reply to it with signal(channel, from.client, …). */
  from: ClientInfo;
  /** Any JSON value: a session description or an ICE candidate for the SDK's WebRTC helper. */
  data: unknown;
}

/** A subscription was confirmed by the server (again, after a reconnect). */
export interface SubscribedEvent {
  channel: string;
  /** Where the stream continues from: publications after it follow. */
  position: StreamPosition | null;
  /** The channel keeps history, so the subscription can be resumed. */
  recoverable: boolean;
  /** The client asked to resume from a position. */
  wasRecovering: boolean;
  /**
   * With wasRecovering: true means every missed publication follows, once,
   * in order; false means continuity is broken (history expired, the
   * epoch changed) and the application should reload its state.
   */
  recovered: boolean;
}

export interface SubscribingEvent {
  channel: string;
  /** The server's close code when a connection loss caused it. */
  code?: number;
  reason: string;
}

export interface UnsubscribedEvent {
  channel: string;
  /** The server's error or unsubscribe code; 0 when the application unsubscribed. */
  code: number;
  reason: string;
  /** Why the server refused or ended the subscription, if it did. */
  error?: Error;
}

export interface JoinLeaveEvent {
  channel: string;
  info: ClientInfo;
}

export interface SubscriptionErrorEvent {
  channel: string;
  error: Error;
}

export interface StateEvent<S> {
  newState: S;
  oldState: S;
}

export interface ConnectingEvent {
  /** The server's close code, when the server ended the last connection. */
  code?: number;
  reason: string;
}

export interface ConnectedEvent {
  transport: TransportName;
  /** The client id the server gave this connection (WebSocket only). */
  client?: string;
  /** The user the token authenticated (WebSocket only). */
  user?: string;
  /** What the connect proxy's backend returned for this connection (WebSocket only). */
  data?: unknown;
}

export interface DisconnectedEvent {
  /** The server's close code, when the server ended the connection for good. */
  code?: number;
  reason: string;
  error?: Error;
}

export interface ErrorEvent {
  /** What failed: a transport, a token fetch, a refresh, a subscription. */
  type: 'transport' | 'token' | 'refresh' | 'connect' | 'subscription';
  transport?: TransportName;
  error: Error;
}

/** The client moved to another transport. */
export interface TransportEvent {
  transport: TransportName;
  previous: TransportName | null;
  /**
   * initial: the first connection; fallback: the previous transport failed;
   * upgrade: a better transport works again; forced: setTransport.
   */
  reason: 'initial' | 'fallback' | 'upgrade' | 'forced';
}

/** Events of a Client. */
export interface ClientEvents {
  state: StateEvent<ClientState>;
  connecting: ConnectingEvent;
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  error: ErrorEvent;
  transport: TransportEvent;
  /** Server-side subscriptions (the token's `channels` claim, WebSocket only). */
  subscribed: SubscribedEvent;
  publication: Publication;
  join: JoinLeaveEvent;
  leave: JoinLeaveEvent;
  unsubscribed: UnsubscribedEvent;
  signal: SignalEvent;
}

/** Events of a Subscription. */
export interface SubscriptionEvents {
  state: StateEvent<SubscriptionState>;
  subscribing: SubscribingEvent;
  subscribed: SubscribedEvent;
  unsubscribed: UnsubscribedEvent;
  publication: Publication;
  join: JoinLeaveEvent;
  leave: JoinLeaveEvent;
  /** A signal to this client in the room the subscription makes it a member of (WebSocket and SSE). */
  signal: SignalEvent;
  error: SubscriptionErrorEvent;
}

// Environment: the minimal shapes the SDK uses, so that browser globals and
// Node packages (npm "ws", "eventsource", undici's fetch) all fit. Handler
// parameters are `any` because implementations declare their own event
// classes, which no narrower type would accept under strictFunctionTypes.

/* eslint-disable @typescript-eslint/no-explicit-any */
/** What the SDK needs of a WebSocket instance. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
}

/** A WebSocket constructor: the browser's, or npm "ws". */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** What the SDK needs of an EventSource instance. */
export interface EventSourceLike {
  readonly readyState: number;
  close(): void;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
  addEventListener(type: string, listener: (ev: any) => any): void;
}

/** An EventSource constructor: the browser's, or npm "eventsource". */
export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

/** What the SDK needs of a fetch response. */
export interface FetchResponseLike {
  readonly ok: boolean;
  readonly status: number;
  text(): Promise<string>;
}

/** What the SDK needs of a fetch request's options. */
export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  credentials?: 'include' | 'same-origin' | 'omit';
  cache?: 'no-store';
}

/** A fetch function: the browser's, or Node's. */
export type FetchLike = (url: string, init?: FetchInit) => Promise<FetchResponseLike>;
/* eslint-enable @typescript-eslint/no-explicit-any */

/**
 * The source of online/offline events: the browser's window and navigator
 * by default. While it reports offline the client does not try to connect.
 */
export interface NetworkMonitor {
  readonly onLine: boolean;
  addEventListener(type: 'online' | 'offline', listener: () => void): void;
  removeEventListener(type: 'online' | 'offline', listener: () => void): void;
}
