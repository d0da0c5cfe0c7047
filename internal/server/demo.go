package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/protocol"
)

// The demo pages (web/) need what an application's backend would give
// them: tokens that name the visitor, so presence and join/leave show
// names, and a feed of live data for the ticker. Dev mode provides both.

// demoTickerChannel is the channel the ticker demo page subscribes to.
const demoTickerChannel = "demo:ticker"

// demoTokenPath mints demo connection tokens in dev mode.
const demoTokenPath = "/demo/token"

// demoTokenTTL is short so that the pages exercise the SDK's token refresh.
const demoTokenTTL = 10 * time.Minute

// demoUser is what a demo visitor may call themselves: it becomes a user ID,
// so it stays clear of the separators user-limited channels use.
var demoUser = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)

// demoSecret gives dev mode an HMAC secret for demo tokens when none is
// configured: a random one, so tokens never outlive the process. A server
// verifying tokens with public keys only gets none, and its demo pages
// connect anonymously.
func demoSecret(cfg *Config) error {
	if !cfg.Dev || cfg.Auth.Enabled() {
		return nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	cfg.Auth.HMACSecret = hex.EncodeToString(b)
	return nil
}

// demoTokens answers POST {"user": "alice"} with {"token": "...",
// "expires_in": seconds}: a connection token for that user whose info is
// {"name": "alice"}.
type demoTokens struct{ secret []byte }

func (d demoTokens) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write(protocol.ErrorBody(protocol.ErrBadRequest.With("POST a JSON body {\"user\": NAME}")))
		return
	}
	var req struct {
		User string `json:"user"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil {
		protocol.WriteHTTPError(w, protocol.ErrBadRequest.With("the body is not JSON {\"user\": NAME}"))
		return
	}
	if !demoUser.MatchString(req.User) {
		protocol.WriteHTTPError(w, protocol.ErrBadRequest.With("user: 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit"))
		return
	}
	info, _ := json.Marshal(map[string]string{"name": req.User})
	tok, err := auth.Mint(auth.MintOptions{Secret: d.secret, UserID: req.User, TTL: demoTokenTTL, Info: info})
	if err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": int(demoTokenTTL.Seconds())})
}

// demoTick is one publication of the ticker feed.
type demoTick struct {
	Prices map[string]float64 `json:"prices"`
	Time   int64              `json:"time"`
}

// demoOpenPrices are the made-up instruments of the ticker and where they
// start when the channel has no history.
var demoOpenPrices = map[string]float64{"HRLD": 101.25, "NATS": 52.10, "REDS": 33.00, "PION": 12.70}

// startDemoTicker publishes a tick every cfg.DemoTicker in dev mode, until
// the returned function is called; that function waits for the feed to stop.
func (s *Server) startDemoTicker() (stop func()) {
	if !s.cfg.Dev || s.cfg.DemoTicker <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.runDemoTicker(ctx, s.cfg.DemoTicker) })
	return func() {
		cancel()
		wg.Wait()
	}
}

func (s *Server) runDemoTicker(ctx context.Context, every time.Duration) {
	prices := s.lastDemoPrices(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for sym, p := range prices {
			// A random walk of about 0.2% a tick, never reaching zero.
			prices[sym] = math.Max(0.01, math.Round(p*(1+mrand.NormFloat64()*0.002)*100)/100)
		}
		data, err := json.Marshal(demoTick{Prices: prices, Time: time.Now().UnixMilli()})
		if err != nil {
			s.log.Error("demo ticker: encoding a tick", "err", err)
			return
		}
		if _, err := s.node.Publish(ctx, protocol.PublishRequest{Channel: demoTickerChannel, Data: data}); err != nil && ctx.Err() == nil {
			s.log.Warn("demo ticker: publish failed", "err", err)
		}
	}
}

// lastDemoPrices continues from the newest tick in history, so prices do
// not jump back to their opening values when the server restarts.
func (s *Server) lastDemoPrices(ctx context.Context) map[string]float64 {
	prices := make(map[string]float64, len(demoOpenPrices))
	for sym, p := range demoOpenPrices {
		prices[sym] = p
	}
	res, err := s.node.History(ctx, protocol.HistoryRequest{Channel: demoTickerChannel, Limit: 1, Reverse: true})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("demo ticker: reading the last tick", "err", err)
		}
		return prices
	}
	if len(res.Publications) == 0 {
		return prices
	}
	var last demoTick
	if json.Unmarshal(res.Publications[0].Data, &last) != nil {
		return prices
	}
	for sym, p := range last.Prices {
		if _, known := prices[sym]; known && p > 0 {
			prices[sym] = p
		}
	}
	return prices
}
