package test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/server"
)

// subscribeCap is max_channels_per_connection, which hostileConfig leaves
// at its default.
const subscribeCap = 128

// TestHostileSubscribeCap sends 10,000 subscribes to distinct channels on
// one connection of a server whose command rate lets every one through, so
// that the per-connection channel cap is what stops them (the suite's
// other server refuses most of them for their rate first, see
// subscribeFlood). Exactly the cap's number must succeed, every further
// one must be refused with 106 and nothing else, the connection must stay
// usable, the server's memory bounded, and other clients served.
func TestHostileSubscribeCap(t *testing.T) {
	if d := server.Defaults().MaxChannelsPerConnection; d != subscribeCap {
		t.Fatalf("max_channels_per_connection defaults to %d; subscribeCap says %d", d, subscribeCap)
	}
	bin := hostileBinary(t)
	const total, window = 10000, 4
	s := startHostileYAML(t, bin, hostileYAML(1_000_000, 2*total))
	c := s.connectWS(t, "subscribe-cap")
	rssStart := readVmStat(t, s.PID(), "VmRSS")

	// Messages of whole commands within max_message_size. No more than
	// window of them are unanswered at a time, which keeps the connection
	// within its bound on commands in flight (8 messages' worth of bytes):
	// the flood is as fast as the server answers, never refused for that.
	type message struct {
		text string
		last uint32 // the id of its last command
	}
	var msgs []message
	var cmds []string
	size := 0
	for i := range total {
		id := uint32(i + 2)
		cmd := command(id, "subscribe", map[string]string{"channel": fmt.Sprintf("room:cap%d", i)})
		if size+len(cmd)+1 > hostileMaxMessage {
			msgs = append(msgs, message{strings.Join(cmds, "\n"), id - 1})
			cmds, size = nil, 0
		}
		cmds = append(cmds, cmd)
		size += len(cmd) + 1
	}
	msgs = append(msgs, message{strings.Join(cmds, "\n"), total + 1})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	replies := make(map[uint32]wsFrame, total)
	read := func() {
		t.Helper()
		frames, err := readFrames(ctx, c)
		if err != nil {
			t.Fatalf("after %d replies: %v (close status %d)", len(replies), err, websocket.CloseStatus(err))
		}
		for _, f := range frames {
			if f.ID >= 2 && f.ID <= total+1 {
				if _, dup := replies[f.ID]; dup {
					t.Fatalf("command %d answered twice", f.ID)
				}
				replies[f.ID] = f
			}
		}
	}
	answered := func(m message) bool { _, ok := replies[m.last]; return ok }
	start := time.Now()
	for i, m := range msgs {
		for i >= window && !answered(msgs[i-window]) {
			read()
		}
		sendText(t, ctx, c, m.text)
	}
	for len(replies) < total {
		read()
	}
	elapsed := time.Since(start)

	ok, refused, other := 0, 0, map[uint32]int{}
	lastOK := uint32(0)
	for id, f := range replies {
		switch {
		case f.Error == nil:
			ok++
			lastOK = max(lastOK, id)
		case f.Error.Code == 106:
			refused++
		default:
			other[f.Error.Code]++
		}
	}
	t.Logf("%d subscribes in %d messages answered in %v: %d accepted, %d refused with 106, others %v", total, len(msgs), elapsed, ok, refused, other)
	if ok != subscribeCap || refused != total-subscribeCap || len(other) != 0 {
		t.Errorf("%d accepted, %d refused with 106, other codes %v; want %d accepted (max_channels_per_connection) and %d refused with 106",
			ok, refused, other, subscribeCap, total-subscribeCap)
	}
	// One connection's commands are handled in order: the first ones fill
	// the cap.
	if lastOK != subscribeCap+1 {
		t.Errorf("the last accepted subscribe is command %d, want %d", lastOK, subscribeCap+1)
	}
	if f := replies[subscribeCap+2]; f.Error != nil && !strings.Contains(f.Error.Message, fmt.Sprint(subscribeCap)) {
		t.Errorf("refusal %q does not name the limit %d", f.Error.Message, subscribeCap)
	}

	// The refusals cost the connection nothing: it still works, and still
	// gets what is published on the channels it holds.
	sendText(t, ctx, c, command(total+2, "ping", nil))
	r, _ := awaitReply(t, c, total+2, 10*time.Second)
	expectResult(t, "ping after the refusals", r)
	if _, err := s.apiPublish("room:cap0", map[string]string{"after": "flood"}); err != nil {
		t.Fatal(err)
	}
	for got := false; !got; {
		frames, err := readFrames(ctx, c)
		if err != nil {
			t.Fatalf("no publication on a held channel after the flood: %v", err)
		}
		for _, f := range frames {
			got = got || f.Type == "publication" && f.Channel == "room:cap0"
		}
	}

	const maxGrowth = 32 << 20
	peak := readVmStat(t, s.PID(), "VmHWM")
	t.Logf("server RSS %d MiB before the flood, peak %d MiB", rssStart>>20, peak>>20)
	if peak-rssStart >= maxGrowth {
		t.Errorf("server RSS grew by %d MiB during the flood, want under %d MiB", (peak-rssStart)>>20, maxGrowth>>20)
	}
	s.assertHealthy(t)
}

// TestHostileUserLimitedChannels subscribes to channels limited to other
// users, over WebSocket, SSE and a poll: each is refused with 103 (HTTP
// 403), while the users they name get in.
func TestHostileUserLimitedChannels(t *testing.T) {
	bin := hostileBinary(t)
	t.Parallel()
	s := startHostile(t, bin)
	channels := []string{
		"dm:alice,bob",        // namespace dm is user_limited
		"room:inbox#alice",    // '#' limits a channel in any namespace
		"room:pair#bob,alice", // the list after the last '#'
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	carol := s.connectWS(t, "carol")
	alice := s.connectWS(t, "alice")
	id := uint32(1)
	for _, ch := range channels {
		t.Run(ch, func(t *testing.T) {
			id++
			sendText(t, ctx, carol, command(id, "subscribe", map[string]string{"channel": ch}))
			r, _ := awaitReply(t, carol, id, 10*time.Second)
			expectErrorReply(t, "carol's WebSocket subscribe", r, 103)
			if r.Error != nil && !strings.Contains(r.Error.Message, "limited to the users it names") {
				t.Errorf("refusal %q does not say why", r.Error.Message)
			}
			q := url.QueryEscape(ch)
			a := s.request(t, http.MethodGet, s.URL("/sse?channel="+q), bearer(userToken(t, "carol")), nil)
			expectHTTPError(t, "carol's SSE stream", a, http.StatusForbidden, 103)
			a = s.request(t, http.MethodGet, s.URL("/poll?timeout=0&channel="+q), bearer(userToken(t, "carol")), nil)
			expectHTTPError(t, "carol's poll", a, http.StatusForbidden, 103)

			sendText(t, ctx, alice, command(id, "subscribe", map[string]string{"channel": ch}))
			r, _ = awaitReply(t, alice, id, 10*time.Second)
			expectResult(t, "alice's subscribe", r)
			if a := s.request(t, http.MethodGet, s.URL("/poll?timeout=0&channel="+q), bearer(userToken(t, "alice")), nil); a.status != http.StatusOK {
				t.Errorf("alice's poll: HTTP %d code %d (%q)", a.status, a.err.Code, a.err.Message)
			}
		})
	}
	// Carol's refusals left her connection working.
	id++
	sendText(t, ctx, carol, command(id, "ping", nil))
	r, _ := awaitReply(t, carol, id, 10*time.Second)
	expectResult(t, "carol's ping after the refusals", r)
	s.assertHealthy(t)
}
