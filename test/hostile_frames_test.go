package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestHostileFrames sends malformed, oversized, binary, unknown and
// excessive frames on connected WebSocket sessions, and checks each exact
// outcome and that the server stays healthy.
func TestHostileFrames(t *testing.T) {
	bin := hostileBinary(t)
	t.Parallel()
	s := startHostile(t, bin)

	closes := []struct {
		name    string
		typ     websocket.MessageType
		payload string
		close   websocket.StatusCode
	}{
		// The payload is valid JSON, so only its size is at fault.
		{"oversized message", websocket.MessageText, command(2, "ping", map[string]string{"pad": strings.Repeat("x", hostileMaxMessage)}), 4502},
		{"invalid UTF-8 in a text frame", websocket.MessageText, "{\"id\":2,\"method\":\"ping\",\"params\":{\"x\":\"\xff\xfe\xc3\x28\"}}", websocket.StatusProtocolError},
		{"malformed JSON", websocket.MessageText, `{"id":2,"method":"ping",`, 4500},
		{"binary message", websocket.MessageBinary, command(2, "ping", nil), 4500},
	}
	for _, tc := range closes {
		t.Run(tc.name, func(t *testing.T) {
			c := s.connectWS(t, "frames-"+strings.ReplaceAll(tc.name, " ", "-"))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Write(ctx, tc.typ, []byte(tc.payload)); err != nil {
				t.Fatal(err)
			}
			o := readUntilClose(t, c, 10*time.Second)
			if r, ok := o.reply(2); ok {
				t.Errorf("the offending command was answered: %s / %+v", r.Result, r.Error)
			}
			expectClose(t, tc.name, o, tc.close)
			s.assertHealthy(t)
		})
	}

	t.Run("unknown method", func(t *testing.T) {
		c := s.connectWS(t, "frames-unknown")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sendText(t, ctx, c, `{"id":2,"method":"frobnicate","params":{}}`)
		r, _ := awaitReply(t, c, 2, 10*time.Second)
		expectErrorReply(t, "unknown method", r, 104)
		sendText(t, ctx, c, command(3, "ping", nil))
		r, _ = awaitReply(t, c, 3, 10*time.Second)
		expectResult(t, "ping after the unknown method", r)
		s.assertHealthy(t)
	})

	t.Run("command flood", func(t *testing.T) {
		c := s.connectWS(t, "frames-flood")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// 300 pings in 5 messages, far beyond the burst of 50 at 50/s.
		id := uint32(1)
		start := time.Now()
		for range 5 {
			var msg []string
			for range 60 {
				id++
				msg = append(msg, command(id, "ping", nil))
			}
			if err := c.Write(ctx, websocket.MessageText, []byte(strings.Join(msg, "\n"))); err != nil {
				break // closed already
			}
		}
		o := readUntilClose(t, c, 10*time.Second)
		ok, limited, other := countReplies(o.frames, 2, id)
		t.Logf("flood: %d pings answered, %d refused with 111, %d other errors, then close %d %q", ok, limited, other, o.code, o.reason)
		if ok == 0 || limited == 0 || other != 0 {
			t.Errorf("flood: %d answered, %d refused with 111, %d other errors; want some answered, then 111s only", ok, limited, other)
		}
		elapsed := time.Since(start)
		if allowed := hostileBurst + int(hostileCommandRate*elapsed.Seconds()); ok > allowed {
			t.Errorf("flood: %d pings answered within %v, want at most %d (command_burst %d + what %d/s refilled)", ok, elapsed, allowed, hostileBurst, hostileCommandRate)
		}
		expectClose(t, "flood", o, 4506)
		s.assertHealthy(t)
	})

	t.Run("10000 subscribes", func(t *testing.T) {
		subscribeFlood(t, s)
		s.assertHealthy(t)
	})
}

// countReplies sorts the replies to commands first..last: answered, refused
// with 111, and refused with another code.
func countReplies(frames []wsFrame, first, last uint32) (ok, limited, other int) {
	for _, f := range frames {
		if f.ID < first || f.ID > last {
			continue
		}
		switch {
		case f.Error == nil:
			ok++
		case f.Error.Code == 111:
			limited++
		default:
			other++
		}
	}
	return ok, limited, other
}

// subscribeFlood sends 10,000 subscribes to distinct channels on one
// connection, in messages of at most 60 commands that fit
// max_message_size. The server must answer at most a burst's worth (plus
// what the rate refills meanwhile), refuse the next ones with 111, and
// close the connection with 4506.
func subscribeFlood(t *testing.T, s *hostileServer) {
	const total, perMessage = 10000, 60
	c := s.connectWS(t, "frames-subscribes")
	var msgs [][]byte
	var msg []string
	size := 0
	for i := range total {
		cmd := command(uint32(i+2), "subscribe", map[string]string{"channel": fmt.Sprintf("room:f%d", i)})
		if len(msg) == perMessage || size+1+len(cmd) > hostileMaxMessage {
			msgs = append(msgs, []byte(strings.Join(msg, "\n")))
			msg, size = nil, 0
		}
		msg = append(msg, cmd)
		size += len(cmd) + 1
	}
	msgs = append(msgs, []byte(strings.Join(msg, "\n")))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	sent := 0
	start := time.Now()
	wg.Go(func() {
		for _, m := range msgs {
			if c.Write(ctx, websocket.MessageText, m) != nil {
				return // the server closed the connection
			}
			sent++
		}
	})
	o := readUntilClose(t, c, 20*time.Second)
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	ok, limited, other := countReplies(o.frames, 2, total+1)
	t.Logf("%d of %d messages written; %d subscribes answered, %d refused with 111, %d other errors, close %d %q after %v",
		sent, len(msgs), ok, limited, other, o.code, o.reason, elapsed)
	// A token bucket refills while the burst is spent: allow what the
	// rate added over the whole exchange, which takes milliseconds.
	allowed := hostileBurst + int(hostileCommandRate*elapsed.Seconds())
	if ok == 0 || ok > allowed {
		t.Errorf("%d subscribes succeeded, want 1 to %d (command_burst %d + %v at %d/s)", ok, allowed, hostileBurst, elapsed, hostileCommandRate)
	}
	if limited == 0 || other != 0 {
		t.Errorf("%d refused with 111 and %d with other codes, want only 111 refusals", limited, other)
	}
	expectClose(t, "subscribe flood", o, 4506)
}
