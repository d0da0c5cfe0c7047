package server

import "time"

// drainSpread is the window the node spreads its reconnect requests over
// when the server shuts down (node.Config.DrainSpread): drain_spread, but at
// most three quarters of shutdown_timeout, so the clients told last still
// have time to go before the timeout cuts them off.
//
// Spreading the closes is the jitter: each client reconnects as soon as it
// is told (after its own backoff, full jitter from a fraction of a second),
// so the reconnects reach the remaining nodes as evenly as the closes leave.
// A suggested delay in the close itself would only stack a second random
// wait on top. Readiness (/readyz) turns 503 as the drain starts, so a load
// balancer sends no new client to a draining node.
func (c *Config) drainSpread() time.Duration {
	return min(c.DrainSpread, c.ShutdownTimeout*3/4)
}
