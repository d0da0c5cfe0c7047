package node

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

func openNamespace(name string) NamespaceOptions {
	return NamespaceOptions{Name: name, HistorySize: 10, HistoryTTL: time.Minute, Subscribe: AccessAnyone, Publish: AccessAnyone}
}

func TestReloadSwapsNamespacesKeepingSubscriptions(t *testing.T) {
	n := newTestNode(t, Config{Namespaces: []NamespaceOptions{openNamespace("a")}})
	ctx := context.Background()
	p := openSession(t, n, SessionOptions{})
	if err := p.s.SubscribeStream(ctx, []string{"a:x"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(Live{Namespaces: []NamespaceOptions{openNamespace("b")}}); err != nil {
		t.Fatal(err)
	}
	if n.Channels()["a:x"] != 1 {
		t.Fatalf("existing subscription dropped by reload: %v", n.Channels())
	}
	q := openSession(t, n, SessionOptions{})
	if err := q.s.SubscribeStream(ctx, []string{"a:y"}, nil, nil); protocol.AsError(err).Code != protocol.ErrUnknownChannel.Code {
		t.Fatalf("subscribe to a removed namespace: %v", err)
	}
	r := openSession(t, n, SessionOptions{})
	if err := r.s.SubscribeStream(ctx, []string{"b:y"}, nil, nil); err != nil {
		t.Fatalf("subscribe to an added namespace: %v", err)
	}
}

func TestReloadChangesLimits(t *testing.T) {
	n := newTestNode(t, Config{})
	ctx := context.Background()
	data := json.RawMessage(`"` + strings.Repeat("x", 100) + `"`)
	if _, err := n.Publish(ctx, protocol.PublishRequest{Channel: "c", Data: data}); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(Live{Limits: Limits{MaxPublicationSize: 50, MaxHistoryLimit: 5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, protocol.PublishRequest{Channel: "c", Data: data}); protocol.AsError(err).Code != protocol.ErrMessageTooLarge.Code {
		t.Fatalf("publish over the reloaded limit: %v", err)
	}
	if _, err := n.History(ctx, protocol.HistoryRequest{Channel: "c", Limit: 6}); protocol.AsError(err).Code != protocol.ErrLimitExceeded.Code {
		t.Fatalf("history over the reloaded limit: %v", err)
	}
	// Zero limits take their defaults, as in Config.
	if got := n.limits().MaxChannelsPerSession; got != 128 {
		t.Fatalf("default max channels after reload = %d", got)
	}
}

func TestReloadRefusesInvalidConfigEntirely(t *testing.T) {
	n := newTestNode(t, Config{PersonalNamespace: "u", Namespaces: []NamespaceOptions{openNamespace("a"), openNamespace("u")}})
	for name, l := range map[string]Live{
		"duplicate":          {Namespaces: []NamespaceOptions{openNamespace("a"), openNamespace("a"), openNamespace("u")}},
		"invalid":            {Namespaces: []NamespaceOptions{{Name: "a", HistorySize: -1}, openNamespace("u")}},
		"personal removed":   {Namespaces: []NamespaceOptions{openNamespace("a")}},
		"proxy missing":      {Namespaces: []NamespaceOptions{openNamespace("a"), openNamespace("u"), {Name: "p", ProxyPublish: true}}},
		"negative user conn": {Namespaces: []NamespaceOptions{openNamespace("a"), openNamespace("u")}, Limits: Limits{MaxConnectionsPerUser: -1, MaxPublicationSize: 1}},
	} {
		if err := n.Reload(l); err == nil {
			t.Errorf("%s: reload accepted", name)
		}
	}
	if _, err := n.Publish(context.Background(), protocol.PublishRequest{Channel: "a:x", Data: json.RawMessage(`"ok"`)}); err != nil {
		t.Fatalf("old namespaces lost after a refused reload: %v", err)
	}
	if got := n.limits().MaxPublicationSize; got != 64<<10 {
		t.Fatalf("old limits lost after a refused reload: %d", got)
	}
}

// A session keeps the command rate it connected with; the next one gets the
// reloaded rate.
func TestReloadedCommandRateAppliesToNewSessions(t *testing.T) {
	n := newTestNode(t, Config{})
	ctx := context.Background()
	old := openSession(t, n, SessionOptions{Bidirectional: true})
	old.s.HandleFrame(ctx, command(1, "connect", nil))
	if err := n.Reload(Live{Limits: Limits{CommandRate: 1, CommandBurst: 1}}); err != nil {
		t.Fatal(err)
	}
	fresh := openSession(t, n, SessionOptions{Bidirectional: true})
	fresh.s.HandleFrame(ctx, command(1, "connect", nil))
	old.s.mu.Lock()
	oldBurst := old.s.limiter.Burst()
	old.s.mu.Unlock()
	fresh.s.mu.Lock()
	freshBurst := fresh.s.limiter.Burst()
	fresh.s.mu.Unlock()
	if oldBurst != 200 || freshBurst != 1 {
		t.Fatalf("bursts: connected before reload %d (want 200), after %d (want 1)", oldBurst, freshBurst)
	}
}
