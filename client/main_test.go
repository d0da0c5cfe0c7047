package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/server/servertest"
	"github.com/heraldrt/herald/internal/testkit"
	"github.com/heraldrt/herald/internal/transport/websocket"
)

func TestMain(m *testing.M) {
	// nbio prints to stdout unless routed, which would spoil the output
	// examples compare.
	websocket.RouteLibraryLogs(slog.New(slog.DiscardHandler))
	// nbio's websocket package starts a default engine's goroutines at
	// init; ignoring what runs before the first test spares those.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

var transports = []client.Transport{client.WebSocket, client.SSE, client.LongPoll, client.ShortPoll, client.WebRTC}

// testServer is an in-process Herald server that can be stopped and started
// again on the same address, as a restarted process would be.
type testServer struct {
	t   testing.TB
	cfg server.Config
	// addr is the address after the first start, read by other goroutines
	// (publishers) while the test restarts the server.
	addr    atomic.Value
	running *servertest.Server
}

// testAPIKey is the server API key of every test server, which servers
// without dev mode need.
const testAPIKey = "test-api-key"

// startServer runs a dev-mode server on the memory engine at a free port;
// tweak adjusts its configuration. The server stops when the test ends.
func startServer(t testing.TB, tweak func(*server.Config)) *testServer {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Engine = server.EngineMemory
	cfg.Dev = true
	cfg.APIKey = testAPIKey
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.ShutdownTimeout = 5 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	s := &testServer{t: t, cfg: cfg}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start runs the server; after the first start it listens on the same
// address as before.
func (s *testServer) start() {
	s.t.Helper()
	if s.running != nil {
		s.t.Fatal("server already running")
	}
	s.running = servertest.Start(s.t, s.cfg)
	s.cfg.Addr = s.running.Addr
	s.addr.Store(s.running.Addr)
}

// stop shuts the server down gracefully: clients are told to reconnect.
func (s *testServer) stop() {
	if s.running == nil {
		return
	}
	if err := s.running.Stop(); err != nil {
		s.t.Errorf("server run: %v", err)
	}
	s.running = nil
}

// restart stops the server and starts it again on the same address, with
// the durable store in dataDir.
func (s *testServer) restart(dataDir string) {
	s.t.Helper()
	s.stop()
	s.cfg.DataDir = dataDir
	s.start()
}

func (s *testServer) URL() string { return "http://" + s.addr.Load().(string) }

// Addr is the server's host:port.
func (s *testServer) Addr() string { return s.addr.Load().(string) }

// startDurable runs a dev-mode server on the durable engine in dataDir.
func startDurable(t testing.TB, dataDir string) *testServer {
	return startServer(t, func(c *server.Config) {
		c.Engine = server.EngineDurable
		c.DataDir = dataDir
	})
}

// newClient returns a client of url on tr with short backoffs and polls,
// closed when the test ends.
func newClient(t testing.TB, url string, tr client.Transport, tweak func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{
		URL:          url,
		Transport:    tr,
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   100 * time.Millisecond,
		PollTimeout:  2 * time.Second,
		PollInterval: 10 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiPublish publishes through the server API, as a backend would.
func apiPublish(t testing.TB, hc *http.Client, base, channel string, data any, key string) (client.PublishResult, error) {
	body := map[string]any{"channel": channel, "data": data}
	if key != "" {
		body["idempotency_key"] = key
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, base+"/api/publish", bytes.NewReader(b))
	if err != nil {
		return client.PublishResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "apikey "+testAPIKey)
	resp, err := hc.Do(req)
	if err != nil {
		return client.PublishResult{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return client.PublishResult{}, fmt.Errorf("publish: HTTP %d: %s", resp.StatusCode, raw)
	}
	var r struct {
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}
	err = json.Unmarshal(raw, &r)
	return client.PublishResult{Offset: r.Offset, Epoch: r.Epoch}, err
}

// mustPublish publishes seq to channel through the server API.
func mustPublish(t testing.TB, base, channel string, seq int) client.PublishResult {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	r, err := apiPublish(t, hc, base, channel, map[string]int{"seq": seq}, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// publisher publishes {"seq": n} for n from 0 to total-1, round robin over
// channels, one every interval, through the server API at base(). Each
// publish is retried with its idempotency key until acknowledged, so every
// sequence number is stored exactly once however often the server goes away.
type publisher struct {
	acked chan int // receives each sequence number once acknowledged
	done  chan struct{}
	stop  context.CancelFunc
}

func startPublisher(t testing.TB, base func() string, channels []string, total int, interval time.Duration) *publisher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{acked: make(chan int, total), done: make(chan struct{}), stop: cancel}
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	go func() {
		defer close(p.done)
		defer hc.CloseIdleConnections()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for seq := range total {
			key := fmt.Sprintf("seq-%d", seq)
			for {
				_, err := apiPublish(t, hc, base(), channels[seq%len(channels)], map[string]int{"seq": seq}, key)
				if err == nil {
					break
				}
				// The server is away: try again at the publishing pace.
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
			p.acked <- seq
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

// proxy forwards TCP connections to a target and can cut them all at once,
// as a network failure would: neither side gets a goodbye.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(in, out)
		go pipe(out, in)
	}
}

// cut closes every open connection, reporting how many pairs there were.
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, not a clean close
		}
		_ = c.Close()
	}
	n := len(p.conns) / 2
	clear(p.conns)
	return n
}

// recorder keeps what a subscription's handlers saw.
type recorder struct {
	mu           sync.Mutex
	pubs         []client.Publication
	subscribed   []client.SubscribedEvent
	unsubscribed []client.UnsubscribedEvent
	joins        []client.JoinEvent
	leaves       []client.LeaveEvent
	errs         []client.SubscriptionErrorEvent
}

func (r *recorder) config() client.SubscriptionConfig {
	return client.SubscriptionConfig{
		OnPublication: func(p client.Publication) { r.mu.Lock(); r.pubs = append(r.pubs, p); r.mu.Unlock() },
		OnSubscribed:  func(e client.SubscribedEvent) { r.mu.Lock(); r.subscribed = append(r.subscribed, e); r.mu.Unlock() },
		OnUnsubscribed: func(e client.UnsubscribedEvent) {
			r.mu.Lock()
			r.unsubscribed = append(r.unsubscribed, e)
			r.mu.Unlock()
		},
		OnJoin:  func(e client.JoinEvent) { r.mu.Lock(); r.joins = append(r.joins, e); r.mu.Unlock() },
		OnLeave: func(e client.LeaveEvent) { r.mu.Lock(); r.leaves = append(r.leaves, e); r.mu.Unlock() },
		OnError: func(e client.SubscriptionErrorEvent) { r.mu.Lock(); r.errs = append(r.errs, e); r.mu.Unlock() },
	}
}

func (r *recorder) publications() []client.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Publication(nil), r.pubs...)
}

func (r *recorder) subscribedEvents() []client.SubscribedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.SubscribedEvent(nil), r.subscribed...)
}

func (r *recorder) waitPubs(t testing.TB, n int) []client.Publication {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("%d publications", n), func() bool { return len(r.publications()) >= n })
	return r.publications()
}

func (r *recorder) waitSubscribed(t testing.TB, n int) []client.SubscribedEvent {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("%d subscribed events", n), func() bool { return len(r.subscribedEvents()) >= n })
	return r.subscribedEvents()
}

// seqs decodes the "seq" of each publication.
func seqs(t testing.TB, pubs []client.Publication) []int {
	t.Helper()
	out := make([]int, len(pubs))
	for i, p := range pubs {
		var d struct{ Seq int }
		if err := json.Unmarshal(p.Data, &d); err != nil {
			t.Fatalf("publication %d data %s: %v", i, p.Data, err)
		}
		out[i] = d.Seq
	}
	return out
}

type serverConfig = server.Config
