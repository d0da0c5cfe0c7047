// Package client is the Go client of Herald, a real-time messaging server.
//
// A Client connects to one server over one of four transports (WebSocket,
// SSE, LongPoll, ShortPoll) and carries any number of Subscriptions, one per
// channel. The API and the guarantees are the same on every transport:
//
//	c, err := client.New(client.Config{URL: "http://127.0.0.1:8000"})
//	if err != nil { ... }
//	defer c.Close()
//	sub, err := c.NewSubscription("chat:lobby", client.SubscriptionConfig{
//		OnPublication: func(p client.Publication) { fmt.Printf("%d %s\n", p.Offset, p.Data) },
//	})
//	if err != nil { ... }
//	if err := c.Connect(ctx); err != nil { ... }
//	if err := sub.Subscribe(ctx); err != nil { ... }
//	res, err := c.Publish(ctx, "chat:lobby", []byte(`{"text":"hi"}`))
//
// # Reconnecting and resuming
//
// Once Connect is called the client stays connected by itself. When the
// connection breaks (network failure, server restart, a close code from 4000
// to 4499), it waits a random delay with exponential backoff and full jitter
// (Config.MinBackoff, Config.MaxBackoff) and reconnects; close codes from 4500
// to 4999 and refused credentials stop it (StateDisconnected, OnDisconnected).
//
// Every subscription remembers the stream position (epoch and offset) of the
// last publication it received, and resumes from it after a reconnect. The
// server then either sends every publication missed, in order, once
// (SubscribedEvent.Recovered), or says that continuity is broken
// (WasRecovering without Recovered: history expired or was lost) and the
// stream continues from "now"; the application should then reload its state.
// The client also drops any offset it has already delivered, so a
// publication never reaches OnPublication twice within a stream.
//
// # Handlers
//
// Every handler (the On* fields of Config and SubscriptionConfig) is called
// on one goroutine per Client, one call at a time, in the order events
// happened: a subscription's OnSubscribed comes before the publications it
// announces, and no two handlers ever run concurrently. A handler may call
// any method of the client, including Close, but a long-running handler
// delays all the others, and one that waits for the client (Subscribe, a
// command) while the buffer below is full waits until its context ends:
// the client is itself waiting for handlers to make room.
//
// Received events wait for handlers in a buffer of Config.BufferSize
// publications, joins and leaves. When it is full, the client drops its
// connection, waits until handlers have worked through half of it, and
// resumes from the last position it buffered: stored publications are not
// lost, but ephemeral publications and joins and leaves sent meanwhile are.
// Polling transports instead wait for room before polling again.
//
// # Transports
//
// WebSocket carries commands and publications on one connection, answers
// the server's heartbeat pings, and takes a connection silent for longer than
// the announced ping and pong intervals as dead.
//
// SSE carries all subscriptions on one Server-Sent Events stream. Adding or
// removing a subscription reopens the stream with the new channel list, and
// every channel resumes from its position through Last-Event-ID, as a
// browser's EventSource reconnect does; OnSubscribed is called again for
// every subscription of the reopened stream. A channel in a namespace
// without history has no position, which keeps the whole stream from
// resuming: give such channels a Client of their own, or use WebSocket.
//
// LongPoll and ShortPoll run one poll loop for all subscriptions; each poll
// resumes every channel from its position, and needs history in the
// channel's namespace (else the subscription fails with CodeNotAvailable).
// Polls read history, so ephemeral publications never reach them. The
// server keeps no state between polls: a server restart between two polls
// goes unnoticed, and only a failed poll counts as a lost connection.
//
// On SSE and polling, a client without subscriptions holds no connection
// and is Connected at once; each new subscription is first checked with a
// short poll from "now" (GET /poll), which gives its starting position and
// any refusal (bad name, permission) without subscribing anything.
//
// On SSE and polling, Publish, History, Presence and PresenceStats are
// HTTP requests (POST /publish, /history, /presence, /presence_stats).
// Join and leave events reach WebSocket and SSE subscriptions only: polling
// carries publications alone.
//
// # Authentication
//
// Config.Token is the connection token (a JWT the application's backend
// issues), sent in the WebSocket connect command and as "Authorization:
// Bearer" on every HTTP request of the other transports. Config.GetToken, when
// set, supplies fresh ones: for every new connection, when the server asks
// for a refresh before the token expires (WebSocket refreshes the token on
// its connection; SSE reopens its stream with it, every channel resuming from
// its position), and when the server refuses a poll, stream or command as
// carrying an expired token (it is then sent once more). Without GetToken, an
// expired token stops the client with an error matching ErrTokenExpired.
// Refused credentials stop it with one matching ErrUnauthorized.
//
// Channels of private namespaces need a subscription token as well:
// SubscriptionConfig.Token, or SubscriptionConfig.GetToken, called for every
// subscribe after the first.
//
// Over WebSocket, the server subscribes the client by itself to the channels
// its connection token's "channels" claim names. Their events go to the
// Config.OnServer* handlers, and the client resumes them after every
// reconnect, as it does its Subscriptions.
//
// # Errors
//
// Errors the server reported are, or wrap, an *Error carrying its code
// (errors.As); the Code* constants name them. Connections the server ended
// for good give a *DisconnectError with the close code. ErrUnauthorized and
// ErrTokenExpired match (errors.Is) the errors of both kinds that concern
// credentials.
package client
