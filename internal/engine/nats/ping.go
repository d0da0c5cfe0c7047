package nats

import (
	"context"
	"errors"
)

// Ping reports whether the NATS server answers a round trip: a node whose
// broker does not is not ready for new clients.
func (e *Engine) Ping(ctx context.Context) error {
	c := e.conn.Load()
	if c == nil {
		return errors.New("nats: not connected")
	}
	return c.nc.FlushWithContext(ctx)
}
