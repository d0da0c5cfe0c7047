// Package eventloop serves connections without a goroutine each: a bounded
// worker Pool for per-connection jobs, and a Loop that polls adopted
// connections with epoll (lesismal/nbio), so an idle connection costs its
// socket and a few hundred bytes of state. Push-only transports (SSE) hand
// their hijacked connections to a Loop once the HTTP handshake is done.
package eventloop
