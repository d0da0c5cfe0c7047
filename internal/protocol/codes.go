package protocol

import (
	"errors"
	"fmt"
)

// Error is a failure a client is told about: a stable numeric code and a
// human-readable message. It is the "error" member of a reply frame, and the
// JSON body of an HTTP error response.
type Error struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("herald error %d: %s", e.Code, e.Message) }

// Is makes errors.Is match any *Error with the same code, so callers compare
// against the sentinel values below whatever message a wrapper chose.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// With returns a copy of e with a more specific message and the same code.
func (e *Error) With(format string, args ...any) *Error {
	return &Error{Code: e.Code, Message: e.Message + ": " + fmt.Sprintf(format, args...)}
}

// Error codes. They are stable API: documented in docs/protocol.md, never reused.
var (
	ErrInternal          = &Error{Code: 100, Message: "internal server error"}
	ErrUnauthorized      = &Error{Code: 101, Message: "unauthorized"}
	ErrUnknownChannel    = &Error{Code: 102, Message: "unknown channel"}
	ErrPermissionDenied  = &Error{Code: 103, Message: "permission denied"}
	ErrMethodNotFound    = &Error{Code: 104, Message: "method not found"}
	ErrAlreadySubscribed = &Error{Code: 105, Message: "already subscribed"}
	ErrLimitExceeded     = &Error{Code: 106, Message: "limit exceeded"}
	ErrBadRequest        = &Error{Code: 107, Message: "bad request"}
	ErrNotAvailable      = &Error{Code: 108, Message: "not available"}
	ErrTokenExpired      = &Error{Code: 109, Message: "token expired"}
	ErrNotSubscribed     = &Error{Code: 110, Message: "not subscribed"}
	ErrTooManyRequests   = &Error{Code: 111, Message: "too many requests"}
	ErrInvalidChannel    = &Error{Code: 112, Message: "invalid channel name"}
	ErrInvalidPosition   = &Error{Code: 113, Message: "invalid position"}
	ErrMessageTooLarge   = &Error{Code: 114, Message: "message too large"}
	ErrNotConnected      = &Error{Code: 115, Message: "connect first"}
	ErrShuttingDown      = &Error{Code: 116, Message: "server shutting down"}
	ErrNoRecipient       = &Error{Code: 117, Message: "recipient not found"}
	// ErrBackendUnavailable: a backend proxy did not answer in time or at
	// all; retrying later may succeed.
	ErrBackendUnavailable = &Error{Code: 118, Message: "backend unavailable"}
)

// Application ranges: codes an application's backend chooses, which a
// backend proxy passes to clients unchanged. Errors in [AppErrorMin,
// AppErrorMax]; close codes in [AppCloseReconnectMin, 4499] tell the client
// to reconnect, in [AppCloseMin, 4999] not to. Herald's own codes stay below.
const (
	AppErrorMin          = 1000
	AppErrorMax          = 1999
	AppCloseReconnectMin = 4100
	AppCloseMin          = 4600
)

// AsError returns err as a client-facing *Error. Errors that carry no protocol
// code become ErrInternal, so internal details never leak to clients.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return ErrInternal
}

// Disconnect tells a client why its connection ends and whether reconnecting
// can help. On WebSocket it is the close frame's code and reason; on other
// transports it is a "disconnect" push or an HTTP error body.
type Disconnect struct {
	Code      uint16 `json:"code"`
	Reason    string `json:"reason"`
	Reconnect bool   `json:"reconnect"`
}

// Close codes, from the WebSocket private range. 4000-4499: the client should
// reconnect (with backoff) and resume its subscriptions; 4500-4999: it should
// not, as the same request would fail again.
var (
	DisconnectShutdown     = Disconnect{Code: 4000, Reason: "server shutdown", Reconnect: true}
	DisconnectSlowConsumer = Disconnect{Code: 4001, Reason: "slow consumer", Reconnect: true}
	DisconnectNoPong       = Disconnect{Code: 4002, Reason: "no pong", Reconnect: true}
	DisconnectInternal     = Disconnect{Code: 4003, Reason: "internal error", Reconnect: true}
	DisconnectInsufficient = Disconnect{Code: 4004, Reason: "insufficient state", Reconnect: true}
	DisconnectForced       = Disconnect{Code: 4005, Reason: "forced reconnect", Reconnect: true}
	// DisconnectBackendUnavailable: the backend that authenticates
	// connections (the connect proxy) did not answer.
	DisconnectBackendUnavailable = Disconnect{Code: 4006, Reason: "backend unavailable", Reconnect: true}

	DisconnectBadRequest       = Disconnect{Code: 4500, Reason: "bad request", Reconnect: false}
	DisconnectUnauthorized     = Disconnect{Code: 4501, Reason: "unauthorized", Reconnect: false}
	DisconnectMessageTooLarge  = Disconnect{Code: 4502, Reason: "message too large", Reconnect: false}
	DisconnectConnectionLimit  = Disconnect{Code: 4503, Reason: "connection limit", Reconnect: false}
	DisconnectForceNoReconnect = Disconnect{Code: 4504, Reason: "forced disconnect", Reconnect: false}
	// DisconnectTokenExpired: reconnecting with the same token fails again;
	// a client that can obtain a fresh token reconnects with it.
	DisconnectTokenExpired    = Disconnect{Code: 4505, Reason: "token expired", Reconnect: false}
	DisconnectTooManyRequests = Disconnect{Code: 4506, Reason: "too many requests", Reconnect: false}
)
