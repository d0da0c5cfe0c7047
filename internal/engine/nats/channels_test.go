package nats

import (
	"testing"
	"time"
)

// TestChannelCacheForgetAndEvict: a learned tail is kept until forget
// distrusts it; evictIdle drops idle channels but not one in use.
func TestChannelCacheForgetAndEvict(t *testing.T) {
	var cc channelCache
	cc.init()
	c := cc.lock("a")
	if cc.known(c) {
		t.Fatal("a new channel's tail is known")
	}
	cc.learn(c, tail{seq: 7, offset: 3, epoch: "e"})
	c.mu.Unlock()

	c = cc.lock("a")
	if !cc.known(c) || c.tail.offset != 3 {
		t.Fatalf("learned tail not kept: known %v, %+v", cc.known(c), c.tail)
	}
	c.mu.Unlock()

	cc.forget()
	c = cc.lock("a")
	if cc.known(c) {
		t.Fatal("tail still known after forget")
	}
	cc.learn(c, tail{seq: 8, offset: 4, epoch: "e"})
	c.mu.Unlock()

	busy := cc.lock("busy")
	cc.evictIdle(time.Now().Add(idleChannelTTL))
	if busy.dead {
		t.Fatal("a channel in use was evicted")
	}
	busy.mu.Unlock()
	if again := cc.lock("a"); cc.known(again) || again == c {
		t.Fatal("an idle channel was not evicted")
	} else {
		again.mu.Unlock()
	}
}
