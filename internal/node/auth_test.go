package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// tokens is a TokenVerifier whose tokens are names in a table, so node
// tests exercise authorization without JWT (internal/auth tests that).
type tokens struct {
	mu   sync.Mutex
	conn map[string]Credentials
	subs map[string]SubscriptionGrant
}

func (v *tokens) VerifyConnection(_ context.Context, token string) (Credentials, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.conn[token]
	switch {
	case !ok:
		return Credentials{}, protocol.ErrUnauthorized.With("unknown token")
	case !c.ExpiresAt.IsZero() && time.Now().After(c.ExpiresAt):
		return Credentials{}, protocol.ErrTokenExpired
	}
	return c, nil
}

func (v *tokens) VerifySubscription(_ context.Context, token string) (SubscriptionGrant, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	g, ok := v.subs[token]
	if !ok {
		return SubscriptionGrant{}, protocol.ErrUnauthorized.With("unknown token")
	}
	return g, nil
}

func (v *tokens) add(token string, c Credentials) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.conn[token] = c
}

func newTokens() *tokens {
	return &tokens{conn: map[string]Credentials{}, subs: map[string]SubscriptionGrant{}}
}

// connectWith opens a bidirectional session and sends connect with token.
func connectWith(t *testing.T, n *Node, token string, extra map[string]any) *pipe {
	t.Helper()
	p := openSession(t, n, SessionOptions{Bidirectional: true})
	params := map[string]any{"token": token}
	for k, v := range extra {
		params[k] = v
	}
	p.s.HandleFrame(context.Background(), command(1, "connect", params))
	return p
}

// waitReply waits for the reply to id and returns its result or error member.
func waitReply(t *testing.T, p *pipe, id uint32) map[string]json.RawMessage {
	t.Helper()
	var r map[string]json.RawMessage
	testkit.WaitFor(t, 5*time.Second, fmt.Sprintf("reply %d", id), func() bool {
		var ok bool
		r, ok = replyTo(p.items(), id)
		return ok
	})
	return r
}

func errorCode(t *testing.T, r map[string]json.RawMessage) uint32 {
	t.Helper()
	var e protocol.Error
	if r["error"] == nil || json.Unmarshal(r["error"], &e) != nil {
		t.Fatalf("want an error reply, got %s", r["result"])
	}
	return e.Code
}

func waitDisconnect(t *testing.T, p *pipe) protocol.Disconnect {
	t.Helper()
	testkit.WaitFor(t, 5*time.Second, "disconnect", func() bool { return p.disconnect() != nil })
	return *p.disconnect()
}

func pushes(items []Item, push string) []Item {
	var out []Item
	for _, it := range items {
		if it.Push == push {
			out = append(out, it)
		}
	}
	return out
}

func TestConnectAuthentication(t *testing.T) {
	v := newTokens()
	v.add("alice", Credentials{UserID: "alice", Info: json.RawMessage(`{"name":"Alice"}`)})
	v.add("old", Credentials{UserID: "bob", ExpiresAt: time.Now().Add(-time.Second)})
	n := newTestNode(t, Config{Verifier: v})

	for _, tc := range []struct {
		name, token string
		code        uint32
		close       protocol.Disconnect
	}{
		{"anonymous refused", "", protocol.ErrUnauthorized.Code, protocol.DisconnectUnauthorized},
		{"unknown token", "forged", protocol.ErrUnauthorized.Code, protocol.DisconnectUnauthorized},
		{"expired token", "old", protocol.ErrTokenExpired.Code, protocol.DisconnectTokenExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := connectWith(t, n, tc.token, nil)
			if got := errorCode(t, waitReply(t, p, 1)); got != tc.code {
				t.Errorf("error code %d, want %d", got, tc.code)
			}
			if d := waitDisconnect(t, p); d != tc.close {
				t.Errorf("closed with %+v, want %+v", d, tc.close)
			}
		})
	}

	p := connectWith(t, n, "alice", nil)
	var res protocol.ConnectResult
	if err := json.Unmarshal(waitReply(t, p, 1)["result"], &res); err != nil {
		t.Fatal(err)
	}
	if res.User != "alice" || res.ExpiresIn != 0 {
		t.Errorf("connect result %+v, want user alice and no expiry", res)
	}
	if info := p.s.clientInfo(); string(info.Info) != `{"name":"Alice"}` {
		t.Errorf("client info %s, want the token's info claim", info.Info)
	}
}

func TestPreauthenticatedSessionKeepsTransportCredentials(t *testing.T) {
	n := newTestNode(t, Config{Verifier: newTokens()})
	p := openSession(t, n, SessionOptions{Bidirectional: true, Authenticated: true, Credentials: Credentials{UserID: "carol"}})
	p.s.HandleFrame(context.Background(), command(1, "connect", nil))
	var res protocol.ConnectResult
	if err := json.Unmarshal(waitReply(t, p, 1)["result"], &res); err != nil || res.User != "carol" {
		t.Fatalf("connect result %+v (%v), want user carol from the transport", res, err)
	}
}

func TestTokenExpiryAsksForRefreshThenCloses(t *testing.T) {
	v := newTokens()
	n := newTestNode(t, Config{Verifier: v, RefreshBefore: 300 * time.Millisecond})
	v.add("short", Credentials{UserID: "dave", ExpiresAt: time.Now().Add(600 * time.Millisecond)})

	p := connectWith(t, n, "short", nil)
	var res protocol.ConnectResult
	if err := json.Unmarshal(waitReply(t, p, 1)["result"], &res); err != nil || res.ExpiresIn < 1 {
		t.Fatalf("connect result %+v (%v), want expires_in", res, err)
	}
	testkit.WaitFor(t, 5*time.Second, "refresh push", func() bool { return len(pushes(p.items(), protocol.PushRefresh)) > 0 })
	if d := p.disconnect(); d != nil {
		t.Fatalf("closed before expiry: %+v", d)
	}
	if d := waitDisconnect(t, p); d != protocol.DisconnectTokenExpired {
		t.Fatalf("closed with %+v, want token expired", d)
	}
}

func TestRefreshMovesTheDeadline(t *testing.T) {
	v := newTokens()
	n := newTestNode(t, Config{Verifier: v, RefreshBefore: 300 * time.Millisecond})
	v.add("short", Credentials{UserID: "erin", ExpiresAt: time.Now().Add(600 * time.Millisecond)})
	v.add("long", Credentials{UserID: "erin", ExpiresAt: time.Now().Add(time.Hour)})
	v.add("other", Credentials{UserID: "mallory", ExpiresAt: time.Now().Add(time.Hour)})

	p := connectWith(t, n, "short", nil)
	waitReply(t, p, 1)
	testkit.WaitFor(t, 5*time.Second, "refresh push", func() bool { return len(pushes(p.items(), protocol.PushRefresh)) > 0 })

	p.s.HandleFrame(context.Background(), command(2, "refresh", map[string]string{"token": "other"}))
	if got := errorCode(t, waitReply(t, p, 2)); got != protocol.ErrUnauthorized.Code {
		t.Errorf("refresh with another user's token: code %d, want %d", got, protocol.ErrUnauthorized.Code)
	}
	p.s.HandleFrame(context.Background(), command(3, "refresh", map[string]string{"token": "long"}))
	var res protocol.RefreshResult
	if err := json.Unmarshal(waitReply(t, p, 3)["result"], &res); err != nil || res.ExpiresIn < 3500 {
		t.Fatalf("refresh result %+v (%v), want about an hour", res, err)
	}
	// Past the old expiry the session must still answer.
	deadline := time.Now().Add(time.Second)
	for id := uint32(10); time.Now().Before(deadline); id++ {
		p.s.HandleFrame(context.Background(), command(id, "ping", nil))
		waitReply(t, p, id)
	}
	if d := p.disconnect(); d != nil {
		t.Fatalf("refreshed session closed: %+v", d)
	}
}

func TestServerSideSubscriptionsFromToken(t *testing.T) {
	v := newTokens()
	n := newTestNode(t, Config{Verifier: v})
	v.add("feed", Credentials{UserID: "frank", Channels: []string{"news"}})
	first := publish(t, n, "news", 1)
	publish(t, n, "news", 2)

	p := connectWith(t, n, "feed", map[string]any{"subs": map[string]protocol.StreamPosition{"news": {Epoch: first.Epoch, Offset: first.Offset}}})
	waitReply(t, p, 1)
	testkit.WaitFor(t, 5*time.Second, "subscribed push and recovered publication", func() bool {
		return len(pushes(p.items(), protocol.PushSubscribed)) == 1 && len(publicationOffsets(p.items(), "news")) == 1
	})
	var push SubscribedPush
	if err := json.Unmarshal(pushes(p.items(), protocol.PushSubscribed)[0].Frame, &push); err != nil || push.Channel != "news" || !push.Recovered {
		t.Fatalf("subscribed push %+v (%v), want news recovered", push, err)
	}
	publish(t, n, "news", 3)
	testkit.WaitFor(t, 5*time.Second, "live publication", func() bool {
		got := publicationOffsets(p.items(), "news")
		return len(got) == 2 && got[1] == first.Offset+2
	})
	// The subscription is the client's like any other.
	p.s.HandleFrame(context.Background(), command(2, "unsubscribe", map[string]string{"channel": "news"}))
	if r := waitReply(t, p, 2); r["error"] != nil {
		t.Fatalf("unsubscribe a server-side subscription: %s", r["error"])
	}
}

func TestPrivateNamespaceNeedsSubscriptionToken(t *testing.T) {
	v := newTokens()
	v.add("gina", Credentials{UserID: "gina"})
	v.subs["for-gina"] = SubscriptionGrant{UserID: "gina", Channel: "secret:plans"}
	v.subs["for-harry"] = SubscriptionGrant{UserID: "harry", Channel: "secret:plans"}
	v.subs["other-channel"] = SubscriptionGrant{UserID: "gina", Channel: "secret:other"}
	n := newTestNode(t, Config{Verifier: v, Namespaces: []NamespaceOptions{{
		Name: "secret", Private: true, HistorySize: 10, HistoryTTL: time.Minute,
		Subscribe: AccessAuthenticated, HistoryAccess: AccessAuthenticated, Publish: AccessAuthenticated,
	}}})
	p := connectWith(t, n, "gina", nil)
	waitReply(t, p, 1)

	p.s.HandleFrame(context.Background(), command(2, "history", map[string]string{"channel": "secret:plans"}))
	if got := errorCode(t, waitReply(t, p, 2)); got != protocol.ErrPermissionDenied.Code {
		t.Errorf("history before subscribing: code %d, want %d", got, protocol.ErrPermissionDenied.Code)
	}
	for id, tc := range map[uint32]struct {
		token string
		code  uint32
	}{
		3: {"", protocol.ErrPermissionDenied.Code},
		4: {"forged", protocol.ErrPermissionDenied.Code},
		5: {"for-harry", protocol.ErrPermissionDenied.Code},
		6: {"other-channel", protocol.ErrPermissionDenied.Code},
	} {
		p.s.HandleFrame(context.Background(), command(id, "subscribe", map[string]string{"channel": "secret:plans", "token": tc.token}))
		if got := errorCode(t, waitReply(t, p, id)); got != tc.code {
			t.Errorf("subscribe with token %q: code %d, want %d", tc.token, got, tc.code)
		}
	}
	p.s.HandleFrame(context.Background(), command(7, "subscribe", map[string]string{"channel": "secret:plans", "token": "for-gina"}))
	if r := waitReply(t, p, 7); r["error"] != nil {
		t.Fatalf("subscribe with a valid token: %s", r["error"])
	}
	p.s.HandleFrame(context.Background(), command(8, "history", map[string]string{"channel": "secret:plans"}))
	if r := waitReply(t, p, 8); r["error"] != nil {
		t.Fatalf("history once subscribed: %s", r["error"])
	}
	// HTTP clients hold no subscription, so they never read a private channel.
	if _, err := n.ClientHistory(context.Background(), Credentials{UserID: "gina"}, protocol.HistoryRequest{Channel: "secret:plans"}); !errors.Is(err, protocol.ErrPermissionDenied) {
		t.Errorf("history over HTTP: %v, want permission denied", err)
	}

	// Polls and streams bring subscription tokens with the request.
	if _, err := n.Poll(context.Background(), Credentials{UserID: "gina"}, PollRequest{Channels: []string{"secret:plans"}}); !errors.Is(err, protocol.ErrPermissionDenied) {
		t.Errorf("poll without token: %v, want permission denied", err)
	}
	if _, err := n.Poll(context.Background(), Credentials{UserID: "gina"}, PollRequest{Channels: []string{"secret:plans"}, SubscriptionTokens: []string{"for-gina"}}); err != nil {
		t.Errorf("poll with token: %v", err)
	}
	stream := openSession(t, n, SessionOptions{Credentials: Credentials{UserID: "gina"}})
	if err := stream.s.SubscribeStream(context.Background(), []string{"secret:plans"}, nil, []string{"for-harry"}); !errors.Is(err, protocol.ErrPermissionDenied) {
		t.Errorf("stream with another user's token: %v, want permission denied", err)
	}
}

func TestUserLimitedChannels(t *testing.T) {
	n := newTestNode(t, Config{Namespaces: []NamespaceOptions{
		{Name: "", HistorySize: 10, HistoryTTL: time.Minute, Subscribe: AccessNobody, HistoryAccess: AccessAuthenticated},
		{Name: "dm", UserLimited: true, Subscribe: AccessNobody, Publish: AccessAuthenticated},
	}})
	alice, bob, anon := Credentials{UserID: "alice"}, Credentials{UserID: "bob"}, Credentials{}
	for _, tc := range []struct {
		cred    Credentials
		channel string
		act     action
		allowed bool
	}{
		{alice, "notifications#alice", actSubscribe, true},
		{bob, "notifications#alice", actSubscribe, false},
		{anon, "notifications#alice", actSubscribe, false},
		{alice, "notifications#alice", actHistory, true},
		{bob, "notifications#alice", actHistory, false},
		{alice, "dm:alice,bob", actSubscribe, true},
		{bob, "dm:alice,bob", actSubscribe, true},
		{Credentials{UserID: "carol"}, "dm:alice,bob", actSubscribe, false},
		{bob, "dm:alice,bob", actPublish, true},
		{Credentials{UserID: "carol"}, "dm:alice,bob", actPublish, false},
		{Credentials{UserID: "alice,bob"}, "dm:alice,bob", actSubscribe, false},
		{alice, "dm:alicex", actSubscribe, false},
		// Not user-limited: the namespace's own rule (nobody) applies.
		{alice, "alice", actSubscribe, false},
	} {
		ns, err := n.ns.resolve(tc.channel)
		if err != nil {
			t.Fatal(err)
		}
		err = n.authorize(tc.cred, ns, tc.channel, tc.act, authorization{})
		if (err == nil) != tc.allowed {
			t.Errorf("%q %s %q: err %v, want allowed=%v", tc.cred.UserID, tc.act, tc.channel, err, tc.allowed)
		}
		if err != nil && !errors.Is(err, protocol.ErrPermissionDenied) {
			t.Errorf("%q %s %q: %v, want permission denied", tc.cred.UserID, tc.act, tc.channel, err)
		}
	}
}

func TestConnectionsPerUserLimit(t *testing.T) {
	v := newTokens()
	v.add("ivan", Credentials{UserID: "ivan"})
	n := newTestNode(t, Config{Verifier: v, AllowAnonymous: true, MaxConnectionsPerUser: 2})

	first := connectWith(t, n, "ivan", nil)
	waitReply(t, first, 1)
	second := connectWith(t, n, "ivan", nil)
	waitReply(t, second, 1)
	third := connectWith(t, n, "ivan", nil)
	if got := errorCode(t, waitReply(t, third, 1)); got != protocol.ErrLimitExceeded.Code {
		t.Errorf("third connection: code %d, want %d", got, protocol.ErrLimitExceeded.Code)
	}
	if d := waitDisconnect(t, third); d != protocol.DisconnectConnectionLimit {
		t.Errorf("third connection closed with %+v", d)
	}
	if _, err := n.NewSession(&pipe{wake: make(chan struct{}, 1)}, SessionOptions{Credentials: Credentials{UserID: "ivan"}}); !errors.Is(err, protocol.ErrLimitExceeded) {
		t.Errorf("stream session over the limit: %v", err)
	}
	// Anonymous clients are not one user.
	for range 3 {
		waitReply(t, connectWith(t, n, "", nil), 1)
	}
	// A finished session frees its place.
	first.s.Close(protocol.DisconnectForced)
	<-first.done
	fourth := connectWith(t, n, "ivan", nil)
	if r := waitReply(t, fourth, 1); r["error"] != nil {
		t.Fatalf("connection after one closed: %s", r["error"])
	}
}

func TestCommandRateLimit(t *testing.T) {
	n := newTestNode(t, Config{CommandRate: 1, CommandBurst: 5})
	p := connectWith(t, n, "", nil)
	waitReply(t, p, 1)

	var frame strings.Builder
	for id := 2; id <= 9; id++ {
		frame.Write(command(uint32(id), "ping", nil))
		frame.WriteByte('\n')
	}
	p.s.HandleFrame(context.Background(), []byte(frame.String()))
	waitReply(t, p, 9)
	limited := 0
	for id := uint32(2); id <= 9; id++ {
		r, _ := replyTo(p.items(), id)
		if r["error"] != nil {
			if code := errorCode(t, r); code != protocol.ErrTooManyRequests.Code {
				t.Errorf("reply %d: code %d, want %d", id, code, protocol.ErrTooManyRequests.Code)
			}
			limited++
		}
	}
	// The bucket starts full at connect: five pings pass, three do not.
	if limited != 3 {
		t.Errorf("%d of 8 pings refused, want 3", limited)
	}
	if d := p.disconnect(); d != nil {
		t.Fatalf("closed while within the tolerance: %+v", d)
	}
	// A client that keeps flooding while refused is closed.
	p.s.HandleFrame(context.Background(), []byte(frame.String()))
	if d := waitDisconnect(t, p); d != protocol.DisconnectTooManyRequests {
		t.Errorf("flood closed with %+v, want too many requests", d)
	}
}

func TestHistoryLimitAboveMaximumIsRefused(t *testing.T) {
	n := newTestNode(t, Config{MaxHistoryLimit: 10})
	publish(t, n, "h", 1)
	_, err := n.ClientHistory(context.Background(), Credentials{}, protocol.HistoryRequest{Channel: "h", Limit: 11})
	if !errors.Is(err, protocol.ErrLimitExceeded) {
		t.Errorf("limit 11 of 10: %v, want limit exceeded", err)
	}
	if res, err := n.ClientHistory(context.Background(), Credentials{}, protocol.HistoryRequest{Channel: "h", Limit: 10}); err != nil || len(res.Publications) != 1 {
		t.Errorf("limit 10: %v, %d publications", err, len(res.Publications))
	}
}

func TestStreamSessionIsToldToReconnectBeforeExpiry(t *testing.T) {
	n := newTestNode(t, Config{RefreshBefore: 300 * time.Millisecond})
	p := openSession(t, n, SessionOptions{Authenticated: true, Credentials: Credentials{UserID: "sse", ExpiresAt: time.Now().Add(600 * time.Millisecond)}})
	if err := p.s.SubscribeStream(context.Background(), []string{"feed"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "refresh push", func() bool { return len(pushes(p.items(), protocol.PushRefresh)) == 1 })
	var push protocol.RefreshPush
	if err := json.Unmarshal(pushes(p.items(), protocol.PushRefresh)[0].Frame, &push); err != nil || push.ExpiresIn < 1 {
		t.Fatalf("refresh push %+v (%v)", push, err)
	}
	if d := waitDisconnect(t, p); d != protocol.DisconnectTokenExpired {
		t.Fatalf("stream closed with %+v, want token expired", d)
	}
}

// A reserved namespace is closed to every client action, user-limited
// channels included; only Reserved credentials may name its channels as
// server-side subscriptions, and a session made with them refreshes only
// with Reserved credentials, whatever the user id.
func TestReservedNamespace(t *testing.T) {
	v := newTokens()
	v.add("server", Credentials{UserID: "op", Channels: []string{"_sys:stats"}, Reserved: true})
	v.add("op", Credentials{UserID: "op"})
	v.add("claim", Credentials{UserID: "op", Channels: []string{"_sys:stats"}})
	n := newTestNode(t, Config{Verifier: v, MaxConnectionsPerUser: 1, Namespaces: []NamespaceOptions{DevNamespace(""), ReservedNamespace("_sys")}})

	if _, err := n.Authenticate(context.Background(), "claim"); protocol.AsError(err).Code != protocol.ErrUnauthorized.Code {
		t.Fatalf("a channels claim naming the reserved namespace: %v", err)
	}
	op := connectWith(t, n, "op", nil)
	waitReply(t, op, 1)
	for i, ch := range []string{"_sys:stats", "_sys:stats#op", "_sys:op,alice"} {
		id := uint32(2 + i)
		op.s.HandleFrame(context.Background(), command(id, "subscribe", map[string]string{"channel": ch}))
		if code := errorCode(t, waitReply(t, op, id)); code != protocol.ErrPermissionDenied.Code {
			t.Fatalf("subscribe to %s: error %d", ch, code)
		}
	}
	op.s.HandleFrame(context.Background(), command(9, "publish", map[string]any{"channel": "_sys:stats", "data": 1}))
	if code := errorCode(t, waitReply(t, op, 9)); code != protocol.ErrPermissionDenied.Code {
		t.Fatalf("publish: error %d", code)
	}

	// op holds the one connection op may have; the server's own session
	// with the same user id is not crowded out.
	server := connectWith(t, n, "server", nil)
	if r := waitReply(t, server, 1); r["error"] != nil {
		t.Fatalf("connect with reserved credentials: %s", r["error"])
	}
	testkit.WaitFor(t, 5*time.Second, "the server-side subscription", func() bool { return n.Channels()["_sys:stats"] == 1 })
	server.s.HandleFrame(context.Background(), command(2, "refresh", map[string]string{"token": "op"}))
	if code := errorCode(t, waitReply(t, server, 2)); code != protocol.ErrUnauthorized.Code {
		t.Fatalf("refresh with ordinary credentials: error %d", code)
	}
	server.s.HandleFrame(context.Background(), command(3, "refresh", map[string]string{"token": "server"}))
	if r := waitReply(t, server, 3); r["error"] != nil {
		t.Fatalf("refresh with reserved credentials: %s", r["error"])
	}
}
