package node

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// subscribedTo reports whether p's session holds a subscription to channel.
func subscribedTo(p *pipe, channel string) bool {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.s.subs.get(channel) != nil
}

func TestUnsubscribeOnEveryNode(t *testing.T) {
	v := newTokens()
	v.add("alice", Credentials{UserID: "alice"})
	v.add("bob", Credentials{UserID: "bob"})
	nodes, _ := newLinkedNodes(t, 2, Config{Verifier: v})
	aliceA := connectWith(t, nodes[0], "alice", nil)
	aliceB := connectWith(t, nodes[1], "alice", nil)
	bobB := connectWith(t, nodes[1], "bob", nil)
	for _, p := range []*pipe{aliceA, aliceB, bobB} {
		waitReply(t, p, 1)
		p.s.HandleFrame(context.Background(), command(2, "subscribe", map[string]string{"channel": "room"}))
		p.s.HandleFrame(context.Background(), command(3, "subscribe", map[string]string{"channel": "other"}))
		waitReply(t, p, 2)
		waitReply(t, p, 3)
	}

	if err := nodes[1].Unsubscribe(context.Background(), ConnectionFilter{User: "alice"}, "room"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*pipe{aliceA, aliceB} {
		testkit.WaitFor(t, 5*time.Second, "alice's unsubscribe push", func() bool {
			return len(pushes(p.items(), protocol.PushUnsubscribe)) == 1
		})
		var push protocol.UnsubscribePush
		if err := json.Unmarshal(pushes(p.items(), protocol.PushUnsubscribe)[0].Frame, &push); err != nil {
			t.Fatal(err)
		}
		if push.Channel != "room" || push.Code != protocol.ErrPermissionDenied.Code {
			t.Fatalf("push %+v", push)
		}
		if subscribedTo(p, "room") || !subscribedTo(p, "other") {
			t.Fatal("alice's subscriptions after unsubscribing from room: want other only")
		}
		if d := p.disconnect(); d != nil {
			t.Fatalf("alice was disconnected: %+v", d)
		}
	}
	if !subscribedTo(bobB, "room") {
		t.Fatal("bob lost his subscription to room")
	}

	// One client, by id, from the other node.
	if err := nodes[0].Unsubscribe(context.Background(), ConnectionFilter{Client: bobB.s.ID()}, "other"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "bob unsubscribed from other", func() bool { return !subscribedTo(bobB, "other") })
	if !subscribedTo(bobB, "room") {
		t.Fatal("bob lost room too")
	}
	// Publications to room no longer reach alice; the linked engines share
	// no publications, so this is on bob's node.
	publish(t, nodes[1], "room", 1)
	testkit.WaitFor(t, 5*time.Second, "bob's publication", func() bool { return len(publicationOffsets(bobB.items(), "room")) == 1 })
	if got := publicationOffsets(aliceB.items(), "room"); len(got) != 0 {
		t.Fatalf("alice still got publications on room: %v", got)
	}
}

func TestUnsubscribeRejectsBadRequests(t *testing.T) {
	n := newTestNode(t, Config{})
	for _, c := range []struct {
		f       ConnectionFilter
		channel string
		code    uint32
	}{
		{ConnectionFilter{}, "room", protocol.ErrBadRequest.Code},
		{ConnectionFilter{User: "alice"}, "", protocol.ErrInvalidChannel.Code},
		{ConnectionFilter{User: "alice"}, "bad channel", protocol.ErrInvalidChannel.Code},
	} {
		if err := n.Unsubscribe(context.Background(), c.f, c.channel); protocol.AsError(err).Code != c.code {
			t.Errorf("Unsubscribe(%+v, %q): %v, want code %d", c.f, c.channel, err, c.code)
		}
	}
}

func TestClusterChannels(t *testing.T) {
	nodes, engines := newLinkedNodes(t, 2, Config{})
	testkit.WaitFor(t, 5*time.Second, "cluster view", func() bool { return len(nodes[0].Nodes()) == 2 })
	subscribe := func(n *Node, channel string) {
		p := openSession(t, n, SessionOptions{Bidirectional: true})
		p.s.HandleFrame(context.Background(), command(1, "connect", nil))
		p.s.HandleFrame(context.Background(), command(2, "subscribe", map[string]string{"channel": channel}))
		waitReply(t, p, 2)
	}
	subscribe(nodes[0], "chat:a")
	subscribe(nodes[1], "chat:a")
	subscribe(nodes[1], "chat:b")
	subscribe(nodes[1], "news")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := nodes[0].ClusterChannels(ctx, "chat:*")
	if err != nil || len(res.Missing) != 0 || res.Truncated {
		t.Fatalf("%+v, %v", res, err)
	}
	want := map[string]ChannelCount{"chat:a": {NumSubscribers: 2, NumNodes: 2}, "chat:b": {NumSubscribers: 1, NumNodes: 1}}
	if len(res.Channels) != len(want) {
		t.Fatalf("channels %+v, want %+v", res.Channels, want)
	}
	for ch, c := range want {
		if res.Channels[ch] != c {
			t.Fatalf("channels %+v, want %+v", res.Channels, want)
		}
	}
	res, err = nodes[1].ClusterChannels(ctx, "")
	if err != nil || len(res.Channels) != 3 {
		t.Fatalf("every channel: %+v, %v", res, err)
	}
	if _, err := nodes[0].ClusterChannels(ctx, "["); protocol.AsError(err).Code != protocol.ErrBadRequest.Code {
		t.Fatalf("bad pattern: %v", err)
	}

	ghost, _ := json.Marshal(controlMessage{Type: controlNodeInfo, From: "ghost", Node: &Info{ID: "ghost"}})
	_ = engines[0].PublishControl(context.Background(), ghost, "")
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	res, err = nodes[0].ClusterChannels(short, "chat:*")
	if err != nil || len(res.Missing) != 1 || res.Missing[0] != "ghost" || res.Channels["chat:a"].NumSubscribers != 2 {
		t.Fatalf("with a silent node: %+v, %v", res, err)
	}
}
