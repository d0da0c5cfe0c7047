/**
 * Herald's browser and Node client: one Client over WebSocket, SSE, long
 * polling or short polling, with automatic fallback, reconnects with
 * backoff, and subscriptions that resume from their last position; and
 * PeerRoom, a WebRTC mesh signaled through a Herald room.
 *
 * @packageDocumentation
 */
import { Client, type ClientOptions } from './client.js';

export { Client, baseURL } from './client.js';
export type { ClientOptions, TransportImpl } from './client.js';
export { Subscription } from './subscription.js';
export type { SubscriptionOptions } from './subscription.js';
export { Backoff } from './backoff.js';
export { Emitter } from './emitter.js';
export type { Listener } from './emitter.js';
export {
  CloseCodes,
  ConnectionLostError,
  DisconnectError,
  ErrorCodes,
  HeraldError,
  HTTPStatusError,
  NotConnectedError,
  TimeoutError,
  UnauthorizedError,
  isPermanentCloseCode,
  isTemporaryCode,
  isTokenExpired,
  isUnauthorized,
} from './errors.js';
export {
  canonicalChannels,
  formatPosition,
  formatPositions,
  isValidChannel,
  isValidEpoch,
  parsePosition,
  parsePositions,
} from './position.js';
export type { StreamPosition } from './position.js';
export { PeerRoom } from './webrtc.js';
export type {
  DataChannelLike,
  IceCandidateInit,
  MediaStreamLike,
  MediaStreamTrackLike,
  Peer,
  PeerChannelEvent,
  PeerConfiguration,
  PeerConnectionConstructor,
  PeerConnectionLike,
  PeerErrorEvent,
  PeerEvent,
  PeerMessageEvent,
  PeerRoomEvents,
  PeerRoomOptions,
  PeerStateEvent,
  PeerTrackEvent,
  SessionDescriptionInit,
} from './webrtc.js';
export type { Confirmation, EndReason, Transport, TransportHost, WantedSub, CommandMethod } from './transport.js';
export { TRANSPORTS } from './types.js';
export type * from './types.js';

/** The SDK's version. */
export const VERSION: string = typeof __HERALD_VERSION__ === 'string' ? __HERALD_VERSION__ : 'dev';

declare const __HERALD_VERSION__: string | undefined;

/** Makes a Client: `createClient(opts)` is `new Client(opts)`. */
export function createClient(options?: ClientOptions): Client {
  return new Client(options);
}
