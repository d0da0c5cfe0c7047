package client

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func response(status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))}
}

func TestResponseError(t *testing.T) {
	err := responseError(response(403, `{"error":{"code":103,"message":"permission denied"}}`))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodePermissionDenied || e.Message != "permission denied" {
		t.Fatalf("Herald error body: %v", err)
	}
	err = responseError(response(502, "<html>Bad Gateway</html>"))
	var se *statusError
	if !errors.As(err, &se) || se.status != 502 || !strings.Contains(err.Error(), "Bad Gateway") {
		t.Fatalf("proxy error body: %v", err)
	}
}

// Only failures that a retry would meet again stop the client.
func TestHTTPEndReason(t *testing.T) {
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		{&Error{Code: CodeUnauthorized}, true},
		{&Error{Code: CodeTokenExpired}, true},
		{&Error{Code: CodeShuttingDown}, false},
		{&Error{Code: CodePermissionDenied}, false}, // one subscription's problem, not the client's
		{&statusError{status: 404}, true},
		{&statusError{status: 429}, false},
		{&statusError{status: 502}, false},
		{errors.New("connection refused"), false},
		{tokenFailure(fmt.Errorf("logged out: %w", ErrUnauthorized)), true},
		{tokenFailure(errors.New("backend down")), false},
	} {
		if got := httpEndReason(tc.err).permanent; got != tc.permanent {
			t.Errorf("%v: permanent %v, want %v", tc.err, got, tc.permanent)
		}
	}
}
