package node

import (
	"context"
	"time"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/protocol"
)

// observedEngine reports every call a node makes to its engine to the
// Observer, under one operation name per method: publish, publish_join,
// publish_leave, subscribe, unsubscribe, history, remove_history,
// presence_add, presence_remove, presence, presence_stats and control.
// Start and Close, once each, are not reported.
type observedEngine struct {
	engine.Engine
	obs Observer
}

// observeEngine wraps e when there is an Observer; without one, calls go
// straight to e and cost no clock reads.
func observeEngine(e engine.Engine, obs Observer) engine.Engine {
	if obs == nil {
		return e
	}
	return observedEngine{Engine: e, obs: obs}
}

func (o observedEngine) done(op string, began time.Time, err error) {
	o.obs.EngineCall(op, time.Since(began), err)
}

func (o observedEngine) Publish(ctx context.Context, channel string, data []byte, opts engine.PublishOptions) (protocol.StreamPosition, error) {
	began := time.Now()
	pos, err := o.Engine.Publish(ctx, channel, data, opts)
	o.done("publish", began, err)
	return pos, err
}

func (o observedEngine) PublishJoin(ctx context.Context, channel string, info protocol.ClientInfo) error {
	began := time.Now()
	err := o.Engine.PublishJoin(ctx, channel, info)
	o.done("publish_join", began, err)
	return err
}

func (o observedEngine) PublishLeave(ctx context.Context, channel string, info protocol.ClientInfo) error {
	began := time.Now()
	err := o.Engine.PublishLeave(ctx, channel, info)
	o.done("publish_leave", began, err)
	return err
}

func (o observedEngine) Subscribe(ctx context.Context, channel string) error {
	began := time.Now()
	err := o.Engine.Subscribe(ctx, channel)
	o.done("subscribe", began, err)
	return err
}

func (o observedEngine) Unsubscribe(ctx context.Context, channel string) error {
	began := time.Now()
	err := o.Engine.Unsubscribe(ctx, channel)
	o.done("unsubscribe", began, err)
	return err
}

func (o observedEngine) History(ctx context.Context, channel string, q engine.HistoryQuery) (engine.HistoryResult, error) {
	began := time.Now()
	res, err := o.Engine.History(ctx, channel, q)
	o.done("history", began, err)
	return res, err
}

func (o observedEngine) RemoveHistory(ctx context.Context, channel string) error {
	began := time.Now()
	err := o.Engine.RemoveHistory(ctx, channel)
	o.done("remove_history", began, err)
	return err
}

func (o observedEngine) AddPresence(ctx context.Context, channel string, info protocol.ClientInfo) error {
	began := time.Now()
	err := o.Engine.AddPresence(ctx, channel, info)
	o.done("presence_add", began, err)
	return err
}

func (o observedEngine) RemovePresence(ctx context.Context, channel, clientID string) error {
	began := time.Now()
	err := o.Engine.RemovePresence(ctx, channel, clientID)
	o.done("presence_remove", began, err)
	return err
}

func (o observedEngine) Presence(ctx context.Context, channel string) (map[string]protocol.ClientInfo, error) {
	began := time.Now()
	p, err := o.Engine.Presence(ctx, channel)
	o.done("presence", began, err)
	return p, err
}

func (o observedEngine) PresenceStats(ctx context.Context, channel string) (engine.PresenceStats, error) {
	began := time.Now()
	st, err := o.Engine.PresenceStats(ctx, channel)
	o.done("presence_stats", began, err)
	return st, err
}

func (o observedEngine) PublishControl(ctx context.Context, data []byte, toNode string) error {
	began := time.Now()
	err := o.Engine.PublishControl(ctx, data, toNode)
	o.done("control", began, err)
	return err
}
