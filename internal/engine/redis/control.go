package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/engine"
)

// The control bus uses classic pub/sub on the shared connection (a cluster
// forwards it to every node, so any node will do): it carries little, and
// rueidis resubscribes it by itself after a reconnect.

// startControl subscribes to the control bus, returning once Redis has
// confirmed it or the first attempt failed.
func (e *Engine) startControl(ctx context.Context) error {
	started := make(chan error, 1)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.runControl(started)
	}()
	select {
	case err := <-started:
		if err != nil {
			return fmt.Errorf("redis: start: subscribe to the control bus: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redis: start: subscribe to the control bus: %w", ctx.Err())
	}
}

// runControl holds the control bus subscription until the engine closes,
// reporting the outcome of the first attempt on started.
func (e *Engine) runControl(started chan<- error) {
	node := e.nodeChannel(e.nodeID)
	var once sync.Once
	report := func(err error) { once.Do(func() { started <- err }) }
	var subscribed atomic.Bool
	ctx := rueidis.WithOnSubscriptionHook(e.ctx, func(s rueidis.PubSubSubscription) {
		// Both channels are in one command, so the second confirmation
		// means both are subscribed.
		if s.Kind == "subscribe" && s.Channel == node {
			subscribed.Store(true)
			report(nil)
		}
	})
	var delay time.Duration
	for {
		cmd := e.client.B().Subscribe().Channel(e.controlChannel(), node).Build()
		err := e.client.Receive(ctx, cmd, func(m rueidis.PubSubMessage) {
			e.delivery.control([]byte(m.Message))
		})
		if e.ctx.Err() != nil {
			report(engine.ErrClosed)
			return
		}
		if err == nil {
			err = errors.New("subscription ended")
		}
		report(err)
		if subscribed.Swap(false) {
			delay = 0
		}
		delay = nextBackoff(delay)
		e.log.Warn("control bus subscription failed; resubscribing", "error", err, "retry_in", delay)
		if !e.sleep(jitter(delay)) {
			return
		}
	}
}

// PublishControl sends data to node toNode, or to every node (this one
// included) when toNode is empty.
func (e *Engine) PublishControl(ctx context.Context, data []byte, toNode string) error {
	if err := e.ready(ctx); err != nil {
		return err
	}
	name := e.controlChannel()
	if toNode != "" {
		name = e.nodeChannel(toNode)
	}
	cmd := e.client.B().Publish().Channel(name).Message(rueidis.BinaryString(data)).Build()
	if err := e.client.Do(ctx, cmd).Error(); err != nil {
		return e.wrap(err, "publish control message")
	}
	return nil
}
