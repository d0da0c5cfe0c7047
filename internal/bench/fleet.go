package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// FleetSpec describes the subscriber connections one process holds. It is
// also the message that starts a worker process, so it is plain JSON.
type FleetSpec struct {
	Server    string `json:"server"`
	Transport string `json:"transport"`
	// Prefix + decimal index names each channel; connection i subscribes to
	// channel i mod Channels.
	Prefix   string `json:"prefix"`
	Channels int    `json:"channels"`
	// First and Count are this fleet's connections among all of the run's:
	// indices First to First+Count-1.
	First int `json:"first"`
	Count int `json:"count"`
	// Sources is the number of loopback source addresses all connections
	// are spread over (connection i uses 127.0.0.(1 + i mod Sources)).
	Sources int `json:"sources"`
	// ConnectConcurrency bounds handshakes in flight.
	ConnectConcurrency int           `json:"connect_concurrency"`
	ConnectTimeout     time.Duration `json:"connect_timeout"`
	PollTimeout        time.Duration `json:"poll_timeout"`
	// ChurnRate, when above zero, makes start replace this many connections
	// per second (close one, open a new one on the same channel).
	ChurnRate float64 `json:"churn_rate"`
}

func (s FleetSpec) channel(i int) string {
	return s.Prefix + strconv.Itoa(i%max(s.Channels, 1))
}

// Connection states.
const (
	stateConnecting int32 = iota
	stateSubscribed
	stateFailed  // never subscribed
	stateClosing // closed by the bench
	stateLost    // closed by the server or the network after subscribing
)

// transport opens subscriber connections of one kind.
type transport interface {
	// prepare sets s.conn, before s is shared with other goroutines.
	prepare(s *sub)
	// open starts connecting s. It may block for the TCP dial; the rest of
	// the handshake completes on the event loop, which then calls
	// fleet.subscribed or fleet.failed.
	open(s *sub)
	// close ends s's connection, if any.
	close(s *sub)
}

// sub is one subscriber connection.
type sub struct {
	f       *fleet
	idx     int // the run-wide connection index
	channel string
	chIndex int
	started time.Time
	state   atomic.Int32
	seq     seqTracker
	// conn is the transport's connection state, set by prepare.
	conn any
	// done is closed once connecting ended, either way.
	done chan struct{}
}

// fleet is the subscribers of one process, read by one event loop.
type fleet struct {
	spec FleetSpec
	loop *loop
	tr   transport
	// ctx bounds every dial; close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	subs []*sub // by idx - spec.First; churn replaces entries
	// dials counts the dials started off the event loop (goDial); it grows
	// only under mu while ctx is live, so close can wait for it.
	dials sync.WaitGroup

	connected   atomic.Int64
	failures    atomic.Int64
	disconnects atomic.Int64
	deliveries  atomic.Uint64
	measured    atomic.Uint64 // distinct measured publications, all subscriptions
	warmup      atomic.Uint64
	duplicated  atomic.Uint64
	outOfOrder  atomic.Uint64
	churned     atomic.Int64
	latency     Histogram
	connectLat  Histogram

	errMu  sync.Mutex
	errs   []string
	nerrs  int
	churnW sync.WaitGroup
	stopCh chan struct{}
}

// maxErrors is how many distinct error messages a result keeps.
const maxErrors = 5

func newFleet(spec FleetSpec) (*fleet, error) {
	if spec.ConnectConcurrency <= 0 {
		spec.ConnectConcurrency = 256
	}
	if spec.ConnectTimeout <= 0 {
		spec.ConnectTimeout = time.Minute
	}
	if spec.PollTimeout <= 0 {
		spec.PollTimeout = 30 * time.Second
	}
	l, err := newLoop(spec.Server, spec.Sources, 10*time.Second)
	if err != nil {
		return nil, err
	}
	f := &fleet{spec: spec, loop: l, subs: make([]*sub, spec.Count), stopCh: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	switch spec.Transport {
	case TransportWebSocket:
		f.tr = newWSTransport(f)
	case TransportSSE:
		f.tr = &sseTransport{f: f}
	case TransportLongPoll:
		f.tr = &pollTransport{f: f}
	default:
		l.stop()
		f.cancel()
		return nil, fmt.Errorf("bench: unknown transport %q", spec.Transport)
	}
	return f, nil
}

func (f *fleet) newSub(idx int) *sub {
	ch := idx % max(f.spec.Channels, 1)
	s := &sub{f: f, idx: idx, chIndex: ch, channel: f.spec.channel(idx), done: make(chan struct{}), started: time.Now()}
	f.tr.prepare(s)
	return s
}

// open connects every subscriber of the fleet and waits until each is
// subscribed or has failed, or the connect timeout passes (the rest then
// count as failed). It returns how long that took.
func (f *fleet) open(ctx context.Context) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, f.spec.ConnectTimeout)
	defer cancel()
	start := time.Now()
	sem := make(chan struct{}, f.spec.ConnectConcurrency)
	for i := range f.spec.Count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		s := f.newSub(f.spec.First + i)
		f.mu.Lock()
		f.subs[i] = s
		f.mu.Unlock()
		go func() {
			<-s.done
			<-sem
		}()
		f.tr.open(s)
	}
	// Wait for the handshakes in flight.
	for range cap(sem) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	subs := append([]*sub(nil), f.subs...)
	f.mu.Unlock()
	for _, s := range subs {
		if s != nil && s.state.Load() == stateConnecting {
			f.fail(s, errors.New("not subscribed within the connect timeout"))
		}
	}
	return time.Since(start)
}

// subscribed is called once s's subscription is confirmed.
func (f *fleet) subscribed(s *sub) {
	if s.state.CompareAndSwap(stateConnecting, stateSubscribed) {
		f.connected.Add(1)
		f.connectLat.Record(time.Since(s.started))
		close(s.done)
	}
}

// failed is called when s ends before it was subscribed. It does not close
// the connection: the transport does, from a context where that is safe.
func (f *fleet) failed(s *sub, err error) {
	if s.state.CompareAndSwap(stateConnecting, stateFailed) {
		f.failures.Add(1)
		f.noteErr(err)
		close(s.done)
	}
}

// fail marks s failed and closes its connection; not for use inside a
// transport callback.
func (f *fleet) fail(s *sub, err error) {
	f.failed(s, err)
	f.tr.close(s)
}

// closed is called when s's connection ends, for whatever reason.
func (f *fleet) closed(s *sub, err error) {
	if err == nil {
		err = errors.New("connection closed")
	}
	if s.state.CompareAndSwap(stateSubscribed, stateLost) {
		f.disconnects.Add(1)
		f.noteErr(fmt.Errorf("disconnected: %w", err))
		return
	}
	f.failed(s, err)
}

// deliver handles data holding zero or more payloads for s.
func (f *fleet) deliver(s *sub, data []byte) {
	now := time.Now().UnixNano()
	for {
		smp, rest, ok := nextPayload(data)
		if !ok {
			return
		}
		data = rest
		f.deliveries.Add(1)
		switch s.seq.observe(smp.seq, smp.measured) {
		case duplicate:
			f.duplicated.Add(1)
			continue
		case late, tooOld:
			f.outOfOrder.Add(1)
		}
		if !smp.measured {
			f.warmup.Add(1)
			continue
		}
		f.measured.Add(1)
		f.latency.Record(time.Duration(now - smp.sentNS))
	}
}

func (f *fleet) noteErr(err error) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	f.nerrs++
	msg := err.Error()
	for _, e := range f.errs {
		if e == msg {
			return
		}
	}
	if len(f.errs) < maxErrors {
		f.errs = append(f.errs, msg)
	}
}

// startChurn begins replacing connections at spec.ChurnRate per second,
// until stopChurn.
func (f *fleet) startChurn(ctx context.Context) {
	if f.spec.ChurnRate <= 0 || f.spec.Count == 0 {
		return
	}
	f.churnW.Add(1)
	go func() {
		defer f.churnW.Done()
		interval := time.Duration(float64(time.Second) / f.spec.ChurnRate)
		t := time.NewTicker(max(interval, time.Millisecond))
		defer t.Stop()
		start := time.Now()
		var next int
		for n := int64(0); ; {
			select {
			case <-t.C:
			case <-f.stopCh:
				return
			case <-ctx.Done():
				return
			}
			due := int64(time.Since(start).Seconds() * f.spec.ChurnRate)
			for ; n < due; n++ {
				f.replace(next)
				next = (next + 1) % f.spec.Count
			}
		}
	}()
}

// replace closes the connection in slot i and opens a new one in its place.
func (f *fleet) replace(i int) {
	f.mu.Lock()
	old := f.subs[i]
	s := f.newSub(f.spec.First + i)
	f.subs[i] = s
	f.mu.Unlock()
	if old != nil {
		f.retire(old)
	}
	f.churned.Add(1)
	f.tr.open(s)
}

// retire closes s on purpose.
func (f *fleet) retire(s *sub) {
	for {
		st := s.state.Load()
		if st == stateConnecting {
			f.fail(s, errors.New("closed before it subscribed"))
			return
		}
		if st != stateSubscribed || s.state.CompareAndSwap(st, stateClosing) {
			break
		}
	}
	f.tr.close(s)
}

func (f *fleet) stopChurn() {
	select {
	case <-f.stopCh:
	default:
		close(f.stopCh)
	}
	f.churnW.Wait()
}

// drain waits until the fleet's subscriptions hold every measured
// publication they should (acked[c] for channel c), or the timeout passes.
func (f *fleet) drain(ctx context.Context, acked []uint64, timeout time.Duration) {
	want := f.expected(acked, false)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for delay := time.Millisecond; f.measured.Load() < want; delay = min(2*delay, 20*time.Millisecond) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// expected is the number of measured deliveries the fleet's subscriptions
// should get: those subscribed now, and with withLost those that were
// subscribed and lost their connection since.
func (f *fleet) expected(acked []uint64, withLost bool) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n uint64
	for _, s := range f.subs {
		if s == nil || s.chIndex >= len(acked) {
			continue
		}
		if st := s.state.Load(); st == stateSubscribed || withLost && st == stateLost {
			n += acked[s.chIndex]
		}
	}
	return n
}

// lost counts measured publications missing from subscriptions that stayed
// subscribed: acked[c] for channel c less what each received.
func (f *fleet) lost(acked []uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n uint64
	for _, s := range f.subs {
		if s == nil || s.chIndex >= len(acked) {
			continue
		}
		if st := s.state.Load(); st != stateSubscribed && st != stateLost {
			continue
		}
		if got := s.seq.measured.Load(); got < acked[s.chIndex] {
			n += acked[s.chIndex] - got
		}
	}
	return n
}

// close ends every connection and stops the event loop.
func (f *fleet) close() {
	f.stopChurn()
	f.mu.Lock()
	subs := append([]*sub(nil), f.subs...)
	f.mu.Unlock()
	for _, s := range subs {
		if s != nil {
			f.retire(s)
		}
	}
	f.mu.Lock()
	f.cancel()
	f.mu.Unlock()
	f.dials.Wait()
	f.loop.stop()
}

// goDial runs dial on a goroutine of its own, unless the fleet is closing:
// close waits for it before stopping the loop it adds a connection to.
func (f *fleet) goDial(dial func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		return
	}
	f.dials.Go(dial)
}

// FleetResult is what one process's subscribers measured. Worker processes
// send it to the parent as JSON; the parent adds them up.
type FleetResult struct {
	Connected       int64         `json:"connected"`
	ConnectFailures int64         `json:"connect_failures"`
	ConnectSeconds  float64       `json:"connect_seconds"`
	ConnectLatency  HistogramData `json:"connect_latency"`
	Disconnects     int64         `json:"disconnects"`
	Churned         int64         `json:"churned"`
	Deliveries      uint64        `json:"deliveries"`
	Measured        uint64        `json:"measured"`
	Warmup          uint64        `json:"warmup"`
	Expected        uint64        `json:"expected"`
	Lost            uint64        `json:"lost"`
	Duplicated      uint64        `json:"duplicated"`
	OutOfOrder      uint64        `json:"out_of_order"`
	Latency         HistogramData `json:"latency"`
	RSSKiB          int64         `json:"rss_kib"`
	CPUSeconds      float64       `json:"cpu_seconds"`
	Errors          []string      `json:"errors,omitempty"`
	ErrorCount      int           `json:"error_count"`
}

// result snapshots the fleet's counters; acked, when not nil, gives the
// measured publications per channel for the expected and lost counts.
func (f *fleet) result(acked []uint64, connectTime time.Duration) FleetResult {
	r := FleetResult{
		Connected:       f.connected.Load(),
		ConnectFailures: f.failures.Load(),
		ConnectSeconds:  connectTime.Seconds(),
		ConnectLatency:  f.connectLat.Data(),
		Disconnects:     f.disconnects.Load(),
		Churned:         f.churned.Load(),
		Deliveries:      f.deliveries.Load(),
		Measured:        f.measured.Load(),
		Warmup:          f.warmup.Load(),
		Duplicated:      f.duplicated.Load(),
		OutOfOrder:      f.outOfOrder.Load(),
		Latency:         f.latency.Data(),
	}
	if acked != nil && f.spec.ChurnRate <= 0 {
		r.Expected = f.expected(acked, true)
		r.Lost = f.lost(acked)
	}
	if rss, err := readRSS(0); err == nil {
		r.RSSKiB = rss
	}
	r.CPUSeconds = selfCPU()
	f.errMu.Lock()
	r.Errors = append([]string(nil), f.errs...)
	r.ErrorCount = f.nerrs
	f.errMu.Unlock()
	return r
}
