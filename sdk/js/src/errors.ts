/**
 * Error codes of the Herald protocol (docs/protocol.md, "Error codes"). They
 * are stable API: compare {@link HeraldError.code} with them.
 */
export const ErrorCodes = {
  Internal: 100,
  Unauthorized: 101,
  UnknownChannel: 102,
  PermissionDenied: 103,
  MethodNotFound: 104,
  AlreadySubscribed: 105,
  LimitExceeded: 106,
  BadRequest: 107,
  NotAvailable: 108,
  TokenExpired: 109,
  NotSubscribed: 110,
  TooManyRequests: 111,
  InvalidChannel: 112,
  InvalidPosition: 113,
  MessageTooLarge: 114,
  ConnectFirst: 115,
  ShuttingDown: 116,
  NoRecipient: 117,
  /** A backend proxy did not answer (docs/proxy.md); retry later. */
  BackendUnavailable: 118,
} as const;

/**
 * Close codes of WebSocket connections, also the `code` of SSE `disconnect`
 * events (docs/protocol.md, "Close codes"). 4000–4499 ask the client to
 * reconnect and resume; 4500–4999 not to.
 */
export const CloseCodes = {
  Shutdown: 4000,
  SlowConsumer: 4001,
  NoPong: 4002,
  InternalError: 4003,
  InsufficientState: 4004,
  ForcedReconnect: 4005,
  BackendUnavailable: 4006,
  BadRequest: 4500,
  Unauthorized: 4501,
  MessageTooLarge: 4502,
  ConnectionLimit: 4503,
  ForcedDisconnect: 4504,
  TokenExpired: 4505,
  TooManyRequests: 4506,
} as const;

/** Reports whether a server close code asks the client not to reconnect. */
export function isPermanentCloseCode(code: number): boolean {
  return code >= 4500 && code <= 4999;
}

/**
 * Reports whether a command that failed with `code` may succeed if retried
 * unchanged, later or on another connection.
 */
export function isTemporaryCode(code: number): boolean {
  return (
    code === ErrorCodes.Internal ||
    code === ErrorCodes.NotAvailable ||
    code === ErrorCodes.BackendUnavailable ||
    code === ErrorCodes.TooManyRequests ||
    code === ErrorCodes.ShuttingDown
  );
}

/**
 * A failure the server reported: a stable numeric `code` (see
 * {@link ErrorCodes}) and a human-readable message. Every failure a server
 * answer caused is a HeraldError, on every transport.
 */
export class HeraldError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(`${message} (code ${code})`);
    this.name = 'HeraldError';
    this.code = code;
  }
}

/**
 * How the server ended a connection for good: a close code from 4500 to
 * 4999, after which the client does not reconnect by itself.
 */
export class DisconnectError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string) {
    super(`disconnected by the server: ${reason} (code ${code})`);
    this.name = 'DisconnectError';
    this.code = code;
    this.reason = reason;
  }
}

/**
 * Throw (or reject with) an UnauthorizedError from `getToken` to stop the
 * client (or end the subscription) for good: the user logged out, say. Any
 * other error from `getToken` is retried with backoff.
 */
export class UnauthorizedError extends Error {
  constructor(message = 'unauthorized') {
    super(message);
    this.name = 'UnauthorizedError';
  }
}

/** A command or wait that did not finish in time. */
export class TimeoutError extends Error {
  constructor(message = 'timeout') {
    super(message);
    this.name = 'TimeoutError';
  }
}

/**
 * The connection a command was sent on was lost before the reply. The
 * command may or may not have taken effect: retry a publish with the same
 * idempotency key.
 */
export class ConnectionLostError extends Error {
  constructor(message = 'connection lost before the reply') {
    super(message);
    this.name = 'ConnectionLostError';
  }
}

/** A command was made, or a wait began, while the client was disconnected. */
export class NotConnectedError extends Error {
  constructor(message = 'client is disconnected: call connect()') {
    super(message);
    this.name = 'NotConnectedError';
  }
}

/** An HTTP answer without a Herald error body: most likely from a proxy. */
export class HTTPStatusError extends Error {
  readonly status: number;
  constructor(status: number, body: string) {
    super(`HTTP ${status}: ${body.slice(0, 200)}`);
    this.name = 'HTTPStatusError';
    this.status = status;
  }
}

/** Reports whether err means the server refused the client's credentials. */
export function isUnauthorized(err: unknown): boolean {
  return (
    err instanceof UnauthorizedError ||
    (err instanceof HeraldError && err.code === ErrorCodes.Unauthorized) ||
    (err instanceof DisconnectError && err.code === CloseCodes.Unauthorized)
  );
}

/** Reports whether err means a token expired. */
export function isTokenExpired(err: unknown): boolean {
  return (
    (err instanceof HeraldError && err.code === ErrorCodes.TokenExpired) ||
    (err instanceof DisconnectError && err.code === CloseCodes.TokenExpired)
  );
}
