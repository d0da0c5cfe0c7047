package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxBatch is the most publications one /api/batch call carries.
const maxBatch = 500

// publisher publishes at a fixed rate through the server API: one
// publication per /api/publish call while it keeps up, and everything
// queued in one /api/batch call when it falls behind (where the server has
// that endpoint and Config.Batch allows it). A scheduler
// makes each publication when it is due, stamping the due time into its
// payload, so a publisher that falls behind shows up as latency instead of
// hiding it (no coordinated omission). Publications go to one of several
// publishing loops by channel; each loop sends whatever is queued as one
// call on its own connection without waiting for the answers to its earlier
// calls (pipeConn), so a channel's publications reach the server in
// sequence order.
type publisher struct {
	cfg      *Config
	client   *http.Client
	base     string
	batch    bool
	pick     func() int
	names    []string
	seq      []uint64 // scheduler only
	measured []atomic.Uint64
	loops    []*pubLoop

	made       atomic.Uint64
	acked      atomic.Uint64
	failed     atomic.Uint64
	dropped    atomic.Uint64
	batches    atomic.Uint64 // calls to /api/batch
	apiLatency Histogram
	// sendWait is how long measured publications waited from their due
	// time to the start of the call that carried them: the generator's own
	// share of the latency, queued behind a call in flight.
	sendWait Histogram

	errMu sync.Mutex
	errs  []string
}

type pubItem struct {
	ch       int
	measured bool
	due      time.Time
	data     []byte
}

// pubLoop is one publishing loop and its queue.
type pubLoop struct {
	mu    sync.Mutex
	queue []pubItem
	wake  chan struct{}
}

// maxQueued bounds one loop's backlog; publications beyond it are dropped
// and counted, so a server that cannot keep up cannot exhaust memory.
const maxQueued = 200_000

func newPublisher(cfg *Config, pick func() int) *publisher {
	p := &publisher{
		cfg:      cfg,
		base:     cfg.Server,
		pick:     pick,
		names:    make([]string, cfg.Channels),
		seq:      make([]uint64, cfg.Channels),
		measured: make([]atomic.Uint64, cfg.Channels),
		loops:    make([]*pubLoop, cfg.Publishers),
	}
	for i := range p.names {
		p.names[i] = cfg.Prefix + strconv.Itoa(i)
	}
	for i := range p.loops {
		p.loops[i] = &pubLoop{wake: make(chan struct{}, 1)}
	}
	p.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 1, // only chooseEndpoint calls through it
			DisableCompression:  true,
		},
	}
	return p
}

// chooseEndpoint settles whether /api/batch may carry a backlog.
func (p *publisher) chooseEndpoint(ctx context.Context) error {
	if p.cfg.Batch == "off" {
		return nil
	}
	status, body, err := p.post(ctx, "/api/batch", []byte(`{"publications":[]}`))
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusUnauthorized:
		return fmt.Errorf("bench: the server API refused the key: %s", body)
	case status == http.StatusNotFound:
		if p.cfg.Batch == "on" {
			return errors.New("bench: the server has no /api/batch")
		}
		fmt.Fprintln(p.cfg.Log, "bench: the server has no /api/batch; publishing with /api/publish only")
	default:
		p.batch = true
	}
	return nil
}

func (p *publisher) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := newCallRequest(ctx, p.base, path, p.cfg.APIKey, body)
	if err != nil {
		return 0, nil, err
	}
	res, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	return res.StatusCode, b, err
}

// run publishes for warm-up + duration, then waits for the queued
// publications to be sent.
func (p *publisher) run(ctx context.Context) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, l := range p.loops {
		wg.Go(func() { p.loop(ctx, l, done) })
	}
	p.schedule(ctx)
	close(done)
	wg.Wait()
	p.client.CloseIdleConnections()
}

func (p *publisher) schedule(ctx context.Context) {
	rate := p.cfg.Rate
	start := time.Now()
	measureFrom := start.Add(p.cfg.Warmup)
	// Publication k is due at start + k/rate, for every k due before the end.
	total := int64(math.Ceil((p.cfg.Warmup + p.cfg.Duration).Seconds() * rate))
	at := func(k int64) time.Time { return start.Add(time.Duration(float64(k) / rate * float64(time.Second))) }
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := int64(0); n < total; {
		due := min(int64(time.Since(start).Seconds()*rate)+1, total)
		for ; n < due; n++ {
			t := at(n)
			p.make(t, !t.Before(measureFrom))
		}
		if n == total {
			return
		}
		timer.Reset(max(time.Until(at(n)), time.Millisecond))
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
	}
}

// make creates the publication due at at and queues it.
func (p *publisher) make(at time.Time, measured bool) {
	ch := p.pick()
	p.seq[ch]++
	it := pubItem{ch: ch, measured: measured, due: at, data: appendPayload(nil, p.seq[ch], at.UnixNano(), measured, p.cfg.PayloadSize)}
	p.made.Add(1)
	l := p.loops[ch%len(p.loops)]
	l.mu.Lock()
	if len(l.queue) >= maxQueued {
		l.mu.Unlock()
		p.dropped.Add(1)
		return
	}
	l.queue = append(l.queue, it)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) loop(ctx context.Context, l *pubLoop, done <-chan struct{}) {
	var pc *pipeConn
	defer func() {
		if pc == nil {
			return
		}
		if ctx.Err() != nil {
			pc.fail() // no answer is coming that anyone waits for
		}
		pc.close()
	}()
	limit := 1
	if p.batch {
		limit = maxBatch
	}
	for {
		l.mu.Lock()
		n := min(len(l.queue), limit)
		items := append([]pubItem(nil), l.queue[:n]...)
		l.queue = append(l.queue[:0], l.queue[n:]...)
		l.mu.Unlock()
		if n > 0 {
			if ctx.Err() != nil {
				p.failed.Add(uint64(n))
				continue
			}
			pc = p.send(ctx, pc, items)
			continue
		}
		select {
		case <-l.wake:
		case <-done:
			select {
			case <-l.wake:
			default:
				return // done, and nothing was queued since the last look
			}
		case <-ctx.Done():
			return
		}
	}
}

// send writes one call carrying items on pc, dialling a new connection
// when pc is nil or broken, and returns the connection to use next.
func (p *publisher) send(ctx context.Context, pc *pipeConn, items []pubItem) *pipeConn {
	start := time.Now()
	for _, it := range items {
		if it.measured {
			p.sendWait.Record(start.Sub(it.due))
		}
	}
	if pc != nil && pc.broken.Load() {
		pc.close()
		pc = nil
	}
	if pc == nil {
		var err error
		if pc, err = dialPipe(ctx, p.base); err != nil {
			p.answered(items, false, 0, nil, err)
			return nil
		}
	}
	single := len(items) == 1 && p.cfg.Batch != "on"
	path, body := "/api/batch", p.batchBody(items)
	if single {
		path, body = "/api/publish", fmt.Appendf(nil, `{"channel":%q,"data":%s}`, p.names[items[0].ch], items[0].data)
	}
	req, err := newCallRequest(ctx, p.base, path, p.cfg.APIKey, body)
	if err != nil {
		p.answered(items, single, 0, nil, err)
		return pc
	}
	pc.call(req, func(status int, res []byte, err error) {
		p.apiLatency.Record(time.Since(start))
		if !single {
			p.batches.Add(1)
		}
		p.answered(items, single, status, res, err)
	})
	return pc
}

func (p *publisher) batchBody(items []pubItem) []byte {
	body := append(make([]byte, 0, 64+len(items)*(p.cfg.PayloadSize+64)), `{"publications":[`...)
	for i, it := range items {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"channel":%q,"data":%s}`, p.names[it.ch], it.data)
	}
	return append(body, "]}"...)
}

// answered counts the outcome of each of a call's items from its answer.
func (p *publisher) answered(items []pubItem, single bool, status int, res []byte, err error) {
	if err == nil && status != http.StatusOK {
		err = statusError(status, res)
	}
	if single {
		p.outcome(items[0], err)
		return
	}
	var out struct {
		Results []struct {
			Error *json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err == nil {
		if err = json.Unmarshal(res, &out); err == nil && len(out.Results) != len(items) {
			err = fmt.Errorf("bench: batch of %d answered with %d results", len(items), len(out.Results))
		}
	}
	for i, it := range items {
		e := err
		if e == nil && out.Results[i].Error != nil {
			e = fmt.Errorf("bench: batch item: %s", *out.Results[i].Error)
		}
		p.outcome(it, e)
	}
}

func (p *publisher) outcome(it pubItem, err error) {
	if err != nil {
		p.failed.Add(1)
		p.errMu.Lock()
		if len(p.errs) < maxErrors {
			p.errs = append(p.errs, err.Error())
		}
		p.errMu.Unlock()
		return
	}
	p.acked.Add(1)
	if it.measured {
		p.measured[it.ch].Add(1)
	}
}

// measuredAcked is the measured publications each channel holds.
func (p *publisher) measuredAcked() []uint64 {
	out := make([]uint64, len(p.measured))
	for i := range p.measured {
		out[i] = p.measured[i].Load()
	}
	return out
}

// pickOne always picks channel 0; pickRandom spreads over n channels.
func pickOne() int { return 0 }

func pickRandom(n int) func() int {
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	return func() int { return r.IntN(n) }
}
