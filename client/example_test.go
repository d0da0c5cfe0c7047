package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/server"
)

// exampleServer starts an in-process server in memory and dev mode, as
// `herald serve --dev --engine memory` would, and returns its URL. tweaks
// change its configuration first.
func exampleServer(tweaks ...func(*server.Config)) (url string, stop func()) {
	cfg := server.Defaults()
	cfg.Addr, cfg.Engine, cfg.Dev = "127.0.0.1:0", server.EngineMemory, true
	cfg.Logger = slog.New(slog.DiscardHandler)
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	return "http://" + srv.Addr(), func() { cancel(); <-done }
}

func Example() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.New(client.Config{URL: url})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Handlers run on the client's own goroutine; hand events over to ours.
	received := make(chan client.Publication, 10)
	sub, err := c.NewSubscription("chat:lobby", client.SubscriptionConfig{
		OnPublication: func(p client.Publication) { received <- p },
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	if err := sub.Subscribe(ctx); err != nil {
		log.Fatal(err)
	}

	res, err := c.Publish(ctx, "chat:lobby", []byte(`{"text": "hello"}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published at offset", res.Offset)

	p := <-received
	fmt.Printf("received %s at offset %d of %s\n", p.Data, p.Offset, p.Channel)
	// Output:
	// published at offset 1
	// received {"text":"hello"} at offset 1 of chat:lobby
}

// A subscription resumes from a position saved earlier (by this process or
// another): the publications after it arrive first, and OnSubscribed says
// whether the server still had all of them. The same code works on every
// transport; this one uses Server-Sent Events.
func ExampleSubscriptionConfig_since() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.New(client.Config{URL: url, Transport: client.SSE})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	var saved client.StreamPosition
	for _, text := range []string{"one", "two", "three"} {
		res, err := c.Publish(ctx, "news", []byte(`"`+text+`"`))
		if err != nil {
			log.Fatal(err)
		}
		if text == "one" {
			saved = client.StreamPosition{Epoch: res.Epoch, Offset: res.Offset}
		}
	}

	events := make(chan string, 10)
	sub, err := c.NewSubscription("news", client.SubscriptionConfig{
		Since: &saved,
		OnSubscribed: func(e client.SubscribedEvent) {
			events <- fmt.Sprintf("subscribed: recovered=%v from offset %d", e.Recovered, e.Position.Offset)
		},
		OnPublication: func(p client.Publication) {
			events <- fmt.Sprintf("offset %d: %s", p.Offset, p.Data)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := sub.Subscribe(ctx); err != nil {
		log.Fatal(err)
	}
	for range 3 {
		fmt.Println(<-events)
	}
	// Output:
	// subscribed: recovered=true from offset 1
	// offset 2: "two"
	// offset 3: "three"
}

// Retrying a publish is safe with an idempotency key: the server stores the
// publication once and answers every retry with the first result.
func ExampleWithIdempotencyKey() {
	var c *client.Client // connected elsewhere
	ctx := context.Background()
	for {
		res, err := c.Publish(ctx, "orders:42", []byte(`{"status":"paid"}`), client.WithIdempotencyKey("order-42-paid"))
		if errors.Is(err, client.ErrDisconnected) {
			continue // lost before the reply: the retry cannot store it twice
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("stored at", res.Offset)
		return
	}
}

// Errors the server reports carry its code.
func ExampleError() {
	var c *client.Client // connected elsewhere
	_, err := c.Publish(context.Background(), "announcements", []byte(`"hi"`))
	var e *client.Error
	if errors.As(err, &e) && e.Code == client.CodePermissionDenied {
		fmt.Println("this client may not publish there:", e.Message)
	}
}

// Connection state changes reach Config's handlers on the client's handler
// goroutine, in order.
func ExampleConfig_handlers() {
	c, err := client.New(client.Config{
		URL:       "https://rt.example.com",
		Transport: client.LongPoll,
		OnConnected: func(e client.ConnectedEvent) {
			log.Printf("connected over %v", e.Transport)
		},
		OnConnecting: func(e client.ConnectingEvent) {
			log.Printf("reconnecting: code %d %s %v", e.Code, e.Reason, e.Err)
		},
		OnDisconnected: func(e client.DisconnectedEvent) {
			log.Printf("disconnected for good: %v", e.Err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

// A server with a backend proxy asks the application's backend who a client
// without a token is, handing it the client's Config.Data, and answers RPCs
// from it.
func ExampleClient_RPC() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User, Method string
			Data         json.RawMessage
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/connect":
			fmt.Fprintf(w, `{"result":{"user":"alice","data":{"welcome":%s}}}`, req.Data)
		case "/rpc":
			fmt.Fprintf(w, `{"result":{"data":{"method":%q,"user":%q}}}`, req.Method, req.User)
		}
	}))
	defer backend.Close()
	url, stop := exampleServer(func(cfg *server.Config) {
		cfg.Proxy.ConnectURL = backend.URL + "/connect"
		cfg.Proxy.RPCURL = backend.URL + "/rpc"
	})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	connected := make(chan client.ConnectedEvent, 1)
	c, err := client.New(client.Config{
		URL:         url,
		Data:        json.RawMessage(`{"room":"lobby"}`),
		OnConnected: func(e client.ConnectedEvent) { connected <- e },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	e := <-connected
	fmt.Println(e.User, string(e.Data))

	data, err := c.RPC(ctx, "profile.get", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(data))
	// Output:
	// alice {"welcome":{"room":"lobby"}}
	// {"method":"profile.get","user":"alice"}
}
