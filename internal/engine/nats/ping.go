package nats

import "context"

// Ping reports whether the NATS server answers a round trip: a node whose
// broker does not is not ready for new clients.
func (e *Engine) Ping(ctx context.Context) error {
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	return c.nc.FlushWithContext(ctx)
}
