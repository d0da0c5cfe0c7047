package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testkit"
)

// Commands refused by the server give an *Error with the server's code, on
// every transport.
func TestCommandErrors(t *testing.T) {
	srv := restrictedServer(t)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx := ctxT(t)
			c := newClient(t, srv.URL(), tr, nil)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := c.Publish(ctx, "readonly:x", []byte(`1`))
			var e *client.Error
			if !errors.As(err, &e) || e.Code != client.CodePermissionDenied || e.Message == "" {
				t.Fatalf("publish to a read-only namespace: %v", err)
			}
			if !errors.Is(err, &client.Error{Code: client.CodePermissionDenied}) {
				t.Fatalf("errors.Is by code fails for %v", err)
			}
			if _, err := c.History(ctx, "readonly:x", client.HistoryOptions{}); codeOf(err) != client.CodePermissionDenied {
				t.Fatalf("history: %v", err)
			}
			if _, err := c.Presence(ctx, "readonly:x"); codeOf(err) != client.CodePermissionDenied {
				t.Fatalf("presence: %v", err)
			}
			if _, err := c.PresenceStats(ctx, "readonly:x"); codeOf(err) != client.CodePermissionDenied {
				t.Fatalf("presence stats: %v", err)
			}
			if _, err := c.History(ctx, "nohist:x", client.HistoryOptions{}); codeOf(err) != client.CodeNotAvailable {
				t.Fatalf("history without history: %v", err)
			}
			if _, err := c.Publish(ctx, "bad channel", []byte(`1`)); codeOf(err) != client.CodeInvalidChannel {
				t.Fatalf("publish to a bad channel name: %v", err)
			}
			stale := client.StreamPosition{Epoch: "gone", Offset: 1}
			if _, err := c.History(ctx, "fine:x", client.HistoryOptions{Since: &stale}); codeOf(err) != client.CodeInvalidPosition {
				t.Fatalf("history from another epoch: %v", err)
			}
			// A failed command does not disturb the connection.
			if _, err := c.Publish(ctx, "fine:x", []byte(`{"ok":true}`)); err != nil || c.State() != client.StateConnected {
				t.Fatalf("publish after errors: %v, %v", err, c.State())
			}
		})
	}
}

// On WebSocket, a command sent while the client reconnects waits for the
// connection instead of failing.
func TestPublishWaitsForReconnect(t *testing.T) {
	srv := startServer(t, nil)
	ctx := ctxT(t)
	c := newClient(t, srv.URL(), client.WebSocket, nil)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	testkit.WaitFor(t, 10*time.Second, "the client to notice", func() bool { return c.State() == client.StateConnecting })
	done := make(chan error, 1)
	go func() {
		_, err := c.Publish(ctx, "wait:x", []byte(`1`))
		done <- err
	}()
	srv.start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("publish did not complete after the server came back")
	}
}
