package client

import (
	"errors"
	"fmt"
)

// Error is a failure the server reported: a stable numeric code (the Code*
// constants, docs/protocol.md) and a human-readable message. Every error a
// server answer caused is, or wraps, an *Error, on every transport:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == client.CodePermissionDenied { ... }
type Error struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("herald: %s (code %d)", e.Message, e.Code) }

// Is makes errors.Is(err, &client.Error{Code: c}) match any *Error with code
// c, whatever its message, and errors.Is(err, ErrUnauthorized) and
// errors.Is(err, ErrTokenExpired) match the codes they name.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == CodeUnauthorized
	case ErrTokenExpired:
		return e.Code == CodeTokenExpired
	}
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Error codes, as documented in docs/protocol.md. They are stable API.
const (
	CodeInternal          uint32 = 100 // server-side failure; retry later
	CodeUnauthorized      uint32 = 101 // missing or invalid credentials
	CodeUnknownChannel    uint32 = 102 // the channel's namespace is not configured
	CodePermissionDenied  uint32 = 103 // the namespace does not allow this
	CodeMethodNotFound    uint32 = 104 // unknown command or endpoint
	CodeAlreadySubscribed uint32 = 105
	CodeLimitExceeded     uint32 = 106 // a configured limit (channels per connection, …)
	CodeBadRequest        uint32 = 107
	CodeNotAvailable      uint32 = 108 // feature off for the namespace, or a dependency down
	CodeTokenExpired      uint32 = 109
	CodeNotSubscribed     uint32 = 110
	CodeTooManyRequests   uint32 = 111
	CodeInvalidChannel    uint32 = 112 // the name breaks the channel name rules
	CodeInvalidPosition   uint32 = 113
	CodeMessageTooLarge   uint32 = 114
	CodeConnectFirst      uint32 = 115
	CodeShuttingDown      uint32 = 116 // the server is draining; the client reconnects
	CodeNoRecipient       uint32 = 117 // a signal's recipient is not in the room
	// CodeBackendUnavailable: the application's backend, which the server
	// asks for RPCs and, when so configured, to authenticate clients, did
	// not answer; retrying later may succeed. Codes from 1000 to 1999 are
	// the backend's own refusals, passed through unchanged.
	CodeBackendUnavailable uint32 = 118
)

// temporary reports whether a command failing with code may succeed if
// retried unchanged, later or on another connection.
func temporary(code uint32) bool {
	switch code {
	case CodeInternal, CodeNotAvailable, CodeTooManyRequests, CodeShuttingDown, CodeBackendUnavailable:
		return true
	}
	return false
}

// DisconnectError is how the server ended a connection for good: a close
// code from 4500 to 4999 (docs/protocol.md, "Close codes"), after which the
// client does not reconnect by itself. Connect returns it, and
// DisconnectedEvent carries it.
type DisconnectError struct {
	Code   uint16
	Reason string
}

func (e *DisconnectError) Error() string {
	return fmt.Sprintf("herald: disconnected by the server: %s (code %d)", e.Reason, e.Code)
}

// Close codes that concern credentials (docs/protocol.md, "Close codes").
const (
	closeUnauthorized = 4501
	closeTokenExpired = 4505
)

// Is makes errors.Is(err, ErrUnauthorized) match close code 4501 and
// errors.Is(err, ErrTokenExpired) match 4505.
func (e *DisconnectError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == closeUnauthorized
	case ErrTokenExpired:
		return e.Code == closeTokenExpired
	}
	return false
}

var (
	// ErrClosed is returned by every method of a Client after Close.
	ErrClosed = errors.New("client: closed")
	// ErrNotConnected is returned by commands and Subscribe while the
	// client is disconnected and not trying to connect: call Connect.
	ErrNotConnected = errors.New("client: not connected")
	// ErrDisconnected is returned by a command whose connection was lost
	// before the server answered. The command may or may not have taken
	// effect: retry a publish with the same idempotency key.
	ErrDisconnected = errors.New("client: connection lost before the reply")
	// ErrUnsubscribed is returned by Subscribe when Unsubscribe was called
	// while it waited.
	ErrUnsubscribed = errors.New("client: unsubscribed")
	// ErrDuplicateSubscription is returned by NewSubscription for a channel
	// the client already has a subscription for.
	ErrDuplicateSubscription = errors.New("client: subscription to this channel exists")
	// ErrRemoved is returned by the methods of a Subscription after
	// RemoveSubscription.
	ErrRemoved = errors.New("client: subscription removed")
	// ErrUnauthorized matches (errors.Is) every refusal of the client's
	// credentials: an *Error with CodeUnauthorized, a *DisconnectError
	// with close code 4501. The client stops on it rather than retry the
	// same credentials. Config.GetToken and SubscriptionConfig.GetToken
	// may return it (or wrap it) to stop the client, or end the
	// subscription, for good: the user logged out, say.
	ErrUnauthorized = errors.New("client: unauthorized")
	// ErrTokenExpired matches (errors.Is) the server's report that a token
	// expired: an *Error with CodeTokenExpired, a *DisconnectError with
	// close code 4505. A client with Config.GetToken fetches a fresh token
	// and goes on; one without stops with this error.
	ErrTokenExpired = errors.New("client: token expired")
)

// endReason says why a connection (or a connection attempt) ended. It is an
// error so transports can return it from deep inside their loops.
type endReason struct {
	code   uint16 // server close code, 0 if none
	reason string
	// permanent: reconnecting would fail the same way.
	permanent bool
	// slow: the handler queue filled up; wait for it to drain first.
	slow bool
	err  error
}

func (e *endReason) Error() string {
	switch {
	case e.code != 0:
		return fmt.Sprintf("connection closed by the server: %s (code %d)", e.reason, e.code)
	case e.err != nil && e.reason != "":
		return e.reason + ": " + e.err.Error()
	case e.err != nil:
		return e.err.Error()
	}
	return e.reason
}

func (e *endReason) Unwrap() error { return e.err }

// userError is the error a Connect caller or DisconnectedEvent sees for r.
func (e *endReason) userError() error {
	if e.code != 0 {
		return &DisconnectError{Code: e.code, Reason: e.reason}
	}
	if e.err != nil {
		return e.err
	}
	return errors.New(e.reason)
}

// closeCode classifies a server close code: 4000-4499 ask the client to
// reconnect, 4500-4999 not to. Codes outside the private range (1000-3999:
// going away, abnormal closure, proxies) are treated as network trouble.
func closeReason(code uint16, reason string) *endReason {
	return &endReason{code: code, reason: reason, permanent: code >= 4500 && code <= 4999}
}

var (
	errSlowHandler = &endReason{reason: "handler queue full (slow handler)", slow: true}
	errGap         = &endReason{reason: "gap in a channel's offsets"}
)
