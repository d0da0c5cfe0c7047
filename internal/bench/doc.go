// Package bench is the load generator behind `herald bench`: it opens
// subscriber connections to a Herald server on this machine, publishes
// through the server API at a fixed rate, and reports what it measured.
//
// Scenarios (Run): idle holds N connections and reports connect rate and
// the server's memory per connection; fanout puts N subscribers on one
// channel; spread puts them on N channels and publishes to random ones;
// churn replaces connections at a rate while publishing. Every subscriber
// uses one transport: WebSocket, SSE or long polling.
//
// How it stays out of the way of what it measures:
//
//   - Subscribers are read by one event loop per process (loop.go): nbio's
//     epoll pollers in client mode, with callbacks run inline. WebSocket
//     framing is nbio's client (ws.go); SSE and long polling drive nbio's
//     HTTP parser with a Processor that streams bodies (httpstream.go). An
//     idle connection has no goroutine and no read buffer of its own.
//   - Payloads carry their sequence number and due time at fixed places
//     (payload.go), found with a byte scan; a per-subscription 64-entry
//     window tells late arrivals from duplicates (seq.go); latencies go to
//     a fixed-size log-linear histogram (histogram.go).
//   - The publisher stamps each publication with the time it was due, not
//     the time it was sent, so a publisher that falls behind shows as
//     latency (publisher.go).
//   - Connections leave from several loopback source addresses, so N can
//     exceed one address's ephemeral ports, and a run whose connections
//     exceed one process's open-file limit re-executes the binary as worker
//     processes that report to the parent as JSON (worker.go).
//
// Only loopback servers are accepted, and every run is bounded in time.
package bench
