package client_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/heraldrt/herald/client"
)

func TestErrorMatching(t *testing.T) {
	err := fmt.Errorf("publishing: %w", &client.Error{Code: client.CodePermissionDenied, Message: "permission denied: publish to \"x\""})
	var e *client.Error
	if !errors.As(err, &e) || e.Code != 103 {
		t.Fatalf("errors.As: %v", err)
	}
	if !errors.Is(err, &client.Error{Code: client.CodePermissionDenied}) || errors.Is(err, &client.Error{Code: client.CodeInternal}) {
		t.Fatal("errors.Is must match by code only")
	}
	if s := e.Error(); s != `herald: permission denied: publish to "x" (code 103)` {
		t.Fatalf("message %q", s)
	}
	var de *client.DisconnectError
	if !errors.As(fmt.Errorf("x: %w", &client.DisconnectError{Code: 4501, Reason: "unauthorized"}), &de) || de.Code != 4501 {
		t.Fatal("DisconnectError does not match")
	}
}

// ErrUnauthorized and ErrTokenExpired match the errors and close codes of
// refused and expired credentials, and nothing else.
func TestCredentialErrors(t *testing.T) {
	for _, tc := range []struct {
		err                   error
		unauthorized, expired bool
	}{
		{&client.Error{Code: client.CodeUnauthorized}, true, false},
		{&client.Error{Code: client.CodeTokenExpired}, false, true},
		{&client.Error{Code: client.CodePermissionDenied}, false, false},
		{&client.DisconnectError{Code: 4501}, true, false},
		{&client.DisconnectError{Code: 4505}, false, true},
		{&client.DisconnectError{Code: 4503}, false, false},
		{fmt.Errorf("GetToken: %w", client.ErrUnauthorized), true, false},
	} {
		err := fmt.Errorf("wrapped: %w", tc.err)
		if errors.Is(err, client.ErrUnauthorized) != tc.unauthorized || errors.Is(err, client.ErrTokenExpired) != tc.expired {
			t.Errorf("%v: unauthorized %v, expired %v", tc.err, errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrTokenExpired))
		}
	}
}
