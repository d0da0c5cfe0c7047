package redis

import "context"

// Ping reports whether Redis answers: a node whose broker does not is not
// ready for new clients.
func (e *Engine) Ping(ctx context.Context) error {
	if !e.started.Load() {
		return errNotStarted
	}
	return e.client.Do(ctx, e.client.B().Ping().Build()).Error()
}
