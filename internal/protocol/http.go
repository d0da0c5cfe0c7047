package protocol

import (
	"encoding/json"
	"net/http"
)

// HTTPStatus is the status code an HTTP endpoint answers with for e.
func HTTPStatus(e *Error) int {
	if e.Code >= AppErrorMin && e.Code <= AppErrorMax {
		// The application's backend refused the request.
		return http.StatusBadRequest
	}
	switch e.Code {
	case ErrUnauthorized.Code, ErrTokenExpired.Code:
		return http.StatusUnauthorized
	case ErrPermissionDenied.Code:
		return http.StatusForbidden
	case ErrUnknownChannel.Code:
		return http.StatusNotFound
	case ErrMethodNotFound.Code, ErrNoRecipient.Code:
		return http.StatusNotFound
	case ErrAlreadySubscribed.Code, ErrBadRequest.Code, ErrInvalidChannel.Code, ErrInvalidPosition.Code, ErrNotSubscribed.Code, ErrNotConnected.Code:
		return http.StatusBadRequest
	case ErrLimitExceeded.Code:
		return http.StatusUnprocessableEntity
	case ErrMessageTooLarge.Code:
		return http.StatusRequestEntityTooLarge
	case ErrTooManyRequests.Code:
		return http.StatusTooManyRequests
	case ErrNotAvailable.Code, ErrShuttingDown.Code, ErrBackendUnavailable.Code:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ErrorBody is the JSON body of an HTTP error response: {"error": {...}}.
func ErrorBody(e *Error) []byte {
	b, _ := json.Marshal(struct {
		Error *Error `json:"error"`
	}{e})
	return b
}

// WriteHTTPError answers an HTTP request with err as a JSON error body and
// the matching status. Errors without a protocol code become ErrInternal.
func WriteHTTPError(w http.ResponseWriter, err error) {
	e := AsError(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(HTTPStatus(e))
	_, _ = w.Write(ErrorBody(e))
}
