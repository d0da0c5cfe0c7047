// Package protocol holds Herald's wire types: publications, stream positions,
// client commands and replies, server pushes, error codes and close codes.
// It performs no I/O of its own (WriteHTTPError only formats a response it is
// handed), so every transport, engine and client can share it.
package protocol
