package poll_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/internal/engine/memory"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
	"github.com/heraldrt/herald/internal/transport/poll"
)

const waitTimeout = 10 * time.Second

type env struct {
	t   *testing.T
	n   *node.Node
	srv *httptest.Server
	hc  *http.Client
}

// setup starts a node on the memory engine and a started poll handler in
// front of it, as the server runs it, so waiting long polls move to the
// event loop. Cleanup shuts everything down and then checks that no goroutine
// is left.
func setup(t *testing.T) *env {
	t.Helper()
	return setupServer(t, false)
}

// setupServer is setup, over TLS when useTLS is set: then polls wait on their
// handler goroutine.
func setupServer(t *testing.T, useTLS bool) *env {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	n, err := node.New(node.Config{Engine: memory.New(memory.Config{}), Dev: true, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := poll.New(poll.Config{Node: n})
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	hc := &http.Client{Transport: &http.Transport{}}
	if useTLS {
		srv.StartTLS()
		hc = srv.Client()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("poll shutdown: %v", err)
		}
		srv.Close()
		hc.CloseIdleConnections()
	})
	return &env{t: t, n: n, srv: srv, hc: hc}
}

func (e *env) publish(channel, data string) uint64 {
	e.t.Helper()
	res, err := e.n.Publish(context.Background(), protocol.PublishRequest{Channel: channel, Data: json.RawMessage(data)})
	if err != nil {
		e.t.Fatalf("publish to %s: %v", channel, err)
	}
	return res.Offset
}

type result struct {
	Publications []protocol.Publication `json:"publications"`
	Next         string                 `json:"next"`
	Recovered    bool                   `json:"recovered"`
	Unrecovered  []string               `json:"unrecovered"`
}

// poll does a successful poll.
func (e *env) poll(query url.Values) result {
	e.t.Helper()
	resp, err := e.hc.Get(e.srv.URL + "/poll?" + query.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		e.t.Fatalf("poll %s: status %d, body does not decode: %v", query.Encode(), resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("poll %s: status %d: %s", query.Encode(), resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		e.t.Errorf("Cache-Control %q", cc)
	}
	var r result
	if err := json.Unmarshal(body, &r); err != nil {
		e.t.Fatal(err)
	}
	if r.Publications == nil {
		e.t.Fatalf("publications missing or null: %s", body)
	}
	return r
}

// pollError does a failing request and returns its status and error code.
func (e *env) pollError(method string, query url.Values) (int, uint32) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/poll?"+query.Encode(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error protocol.Error `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		e.t.Fatalf("%s %s: %v", method, query.Encode(), err)
	}
	return resp.StatusCode, body.Error.Code
}

func offsets(pubs []protocol.Publication) []uint64 {
	var out []uint64
	for _, p := range pubs {
		out = append(out, p.Offset)
	}
	return out
}

func TestShortPoll(t *testing.T) {
	e := setup(t)
	e.publish("news", `"before"`)

	start := time.Now()
	r := e.poll(url.Values{"channel": {"news"}})
	if time.Since(start) > 2*time.Second {
		t.Fatalf("short poll took %v", time.Since(start))
	}
	if len(r.Publications) != 0 || !r.Recovered || r.Next == "" {
		t.Fatalf("first poll: %+v", r)
	}
	ps, err := protocol.ParsePositions(r.Next, 1)
	if err != nil || ps[0].Offset != 1 {
		t.Fatalf("next %q: %v", r.Next, err)
	}

	e.publish("news", `{"n":2}`)
	e.publish("news", `{"n":3,"html":"<b>&</b>"}`)
	r2 := e.poll(url.Values{"channel": {"news"}, "since": {r.Next}})
	if got := offsets(r2.Publications); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("offsets %v", got)
	}
	// Data goes out byte for byte as it was accepted, not HTML-escaped.
	if d := string(r2.Publications[1].Data); d != `{"n":3,"html":"<b>&</b>"}` {
		t.Fatalf("data %s", d)
	}
	if r2.Next == r.Next || !r2.Recovered {
		t.Fatalf("second poll: %+v", r2)
	}
	if r3 := e.poll(url.Values{"channel": {"news"}, "since": {r2.Next}, "timeout": {"0"}}); len(r3.Publications) != 0 || r3.Next != r2.Next {
		t.Fatalf("third poll: %+v", r3)
	}
}

// bothModes runs test against a plain HTTP/1.1 server, where waiting polls
// move to the event loop, and a TLS one, where they keep their goroutine.
func bothModes(t *testing.T, test func(t *testing.T, e *env)) {
	t.Run("loop", func(t *testing.T) { test(t, setupServer(t, false)) })
	t.Run("tls", func(t *testing.T) { test(t, setupServer(t, true)) })
}

func TestShortPollOnEmptyChannelAnswersAtOnce(t *testing.T) {
	bothModes(t, testShortPollOnEmptyChannelAnswersAtOnce)
}

// A short poll with nothing to return must answer without waiting. Timeouts
// count in whole seconds, so any wait at all lasts a second or more; the
// fastest of a few polls is compared with half of that, so one poll slowed
// by a busy machine does not fail the test, while a server that waits makes
// every one of them slow.
func testShortPollOnEmptyChannelAnswersAtOnce(t *testing.T, e *env) {
	next := e.poll(url.Values{"channel": {"empty"}, "timeout": {"0"}}).Next
	fastest := time.Hour
	for range 3 {
		start := time.Now()
		r := e.poll(url.Values{"channel": {"empty"}, "since": {next}, "timeout": {"0"}})
		fastest = min(fastest, time.Since(start))
		if len(r.Publications) != 0 || r.Next != next || !r.Recovered {
			t.Fatalf("short poll of an empty channel: %+v, want nothing at %s", r, next)
		}
	}
	if fastest >= 500*time.Millisecond {
		t.Fatalf("the fastest of 3 short polls of an empty channel took %v: it waited", fastest)
	}
	if ch := e.n.Channels(); len(ch) != 0 {
		t.Fatalf("short polls left waiters on %v", ch)
	}
}

func TestLongPollWakesOnPublication(t *testing.T) { bothModes(t, testLongPollWakesOnPublication) }

func testLongPollWakesOnPublication(t *testing.T, e *env) {
	next := e.poll(url.Values{"channel": {"lp"}}).Next

	type answer struct {
		r       result
		elapsed time.Duration
	}
	done := make(chan answer, 1)
	start := time.Now()
	go func() {
		// No t.Fatal off the test goroutine: errors surface as a bad result.
		resp, err := e.hc.Get(e.srv.URL + "/poll?" + url.Values{"channel": {"lp"}, "since": {next}, "timeout": {"5"}}.Encode())
		var a answer
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&a.r)
			resp.Body.Close()
		}
		a.elapsed = time.Since(start)
		done <- a
	}()
	// The poll's waiter on the channel shows that it is in flight.
	testkit.WaitFor(t, waitTimeout, "the long poll to wait", func() bool { return e.n.Channels()["lp"] == 1 })
	off := e.publish("lp", `"hello"`)

	a := <-done
	if len(a.r.Publications) != 1 || a.r.Publications[0].Offset != off || string(a.r.Publications[0].Data) != `"hello"` {
		t.Fatalf("long poll answer: %+v", a.r)
	}
	if a.elapsed > 4*time.Second {
		t.Fatalf("long poll returned after %v, not when the publication arrived", a.elapsed)
	}
	testkit.WaitFor(t, waitTimeout, "the waiter to go", func() bool { return len(e.n.Channels()) == 0 })
}

func TestLongPollTimesOut(t *testing.T) { bothModes(t, testLongPollTimesOut) }

func testLongPollTimesOut(t *testing.T, e *env) {
	next := e.poll(url.Values{"channel": {"quiet"}}).Next
	start := time.Now()
	r := e.poll(url.Values{"channel": {"quiet"}, "since": {next}, "timeout": {"1"}})
	elapsed := time.Since(start)
	if elapsed < 900*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("timeout=1 returned after %v", elapsed)
	}
	if len(r.Publications) != 0 || r.Next != next || !r.Recovered {
		t.Fatalf("empty long poll: %+v", r)
	}
}

func TestPollFromAnotherEpoch(t *testing.T) {
	e := setup(t)
	e.publish("ep", `1`)
	e.publish("ep", `2`)
	current := e.poll(url.Values{"channel": {"ep"}}).Next

	r := e.poll(url.Values{"channel": {"ep"}, "since": {"gone-1"}})
	if r.Recovered || len(r.Unrecovered) != 1 || r.Unrecovered[0] != "ep" || len(r.Publications) != 0 || r.Next != current {
		t.Fatalf("poll from another epoch: %+v, current %q", r, current)
	}
}

func TestPollTwoChannels(t *testing.T) {
	e := setup(t)
	// Named out of order: positions follow the canonical (sorted) order.
	q := url.Values{"channel": {"two:b", "two:a"}}
	next := e.poll(q).Next
	e.publish("two:a", `"a1"`)
	e.publish("two:b", `"b1"`)
	e.publish("two:a", `"a2"`)
	e.publish("two:b", `"b2"`)

	q.Set("since", next)
	r := e.poll(q)
	got := map[string][]string{}
	for _, p := range r.Publications {
		got[p.Channel] = append(got[p.Channel], string(p.Data))
	}
	if strings.Join(got["two:a"], ",") != `"a1","a2"` || strings.Join(got["two:b"], ",") != `"b1","b2"` || len(r.Publications) != 4 {
		t.Fatalf("publications %+v", r.Publications)
	}
	ps, err := protocol.ParsePositions(r.Next, 2)
	if err != nil || ps[0].Offset != 2 || ps[1].Offset != 2 {
		t.Fatalf("next %q: %v", r.Next, err)
	}

	e.publish("two:b", `"b3"`)
	q.Set("since", r.Next)
	if r := e.poll(q); len(r.Publications) != 1 || string(r.Publications[0].Data) != `"b3"` {
		t.Fatalf("after b3: %+v", r.Publications)
	}
}

func TestPollErrors(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct {
		name   string
		method string
		query  url.Values
		status int
		code   uint32
	}{
		{"bad since", "GET", url.Values{"channel": {"x"}, "since": {"nope"}}, 400, protocol.ErrInvalidPosition.Code},
		{"since for other channels", "GET", url.Values{"channel": {"x", "y"}, "since": {"e1-1"}}, 400, protocol.ErrInvalidPosition.Code},
		{"timeout not a number", "GET", url.Values{"channel": {"x"}, "timeout": {"soon"}}, 400, protocol.ErrBadRequest.Code},
		{"timeout fractional", "GET", url.Values{"channel": {"x"}, "timeout": {"1.5"}}, 400, protocol.ErrBadRequest.Code},
		{"timeout negative", "GET", url.Values{"channel": {"x"}, "timeout": {"-1"}}, 400, protocol.ErrBadRequest.Code},
		{"timeout too long", "GET", url.Values{"channel": {"x"}, "timeout": {"61"}}, 400, protocol.ErrBadRequest.Code},
		{"timeout huge", "GET", url.Values{"channel": {"x"}, "timeout": {"99999999999999999999"}}, 400, protocol.ErrBadRequest.Code},
		{"invalid channel", "GET", url.Values{"channel": {"a b"}}, 400, protocol.ErrInvalidChannel.Code},
		{"no channel", "GET", url.Values{}, 400, protocol.ErrBadRequest.Code},
		{"POST", "POST", url.Values{"channel": {"x"}}, 405, protocol.ErrBadRequest.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code := e.pollError(tc.method, tc.query)
			if status != tc.status || code != tc.code {
				t.Fatalf("got %d code %d, want %d code %d", status, code, tc.status, tc.code)
			}
		})
	}
}

// startPoll starts a long poll on another goroutine; its answer, or an empty
// result when the request fails, arrives on the returned channel.
func (e *env) startPoll(query url.Values) <-chan result {
	done := make(chan result, 1)
	go func() {
		// No t.Fatal off the test goroutine: errors surface as a bad result.
		var r result
		resp, err := e.hc.Get(e.srv.URL + "/poll?" + query.Encode())
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
		}
		done <- r
	}()
	return done
}

func handlerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "poll.(*Handler).ServeHTTP")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Waiting long polls over plain HTTP/1.1 live on the event loop: none of
// them holds a handler goroutine, and each still answers when woken.
func TestWaitingPollsHoldNoGoroutine(t *testing.T) {
	e := setup(t)
	const polls = 50
	var answers []<-chan result
	for i := range polls {
		ch := fmt.Sprintf("idle:%d", i%5)
		next := e.poll(url.Values{"channel": {ch}}).Next
		answers = append(answers, e.startPoll(url.Values{"channel": {ch}, "since": {next}, "timeout": {"30"}}))
	}
	testkit.WaitFor(t, waitTimeout, "the long polls to wait", func() bool {
		total := 0
		for _, n := range e.n.Channels() {
			total += n
		}
		return total == polls
	})
	if n := handlerGoroutines(); n != 0 {
		t.Fatalf("%d handler goroutines for %d waiting long polls, want 0", n, polls)
	}
	// An ephemeral publication wakes the waits but gives them nothing.
	if _, err := e.n.Publish(context.Background(), protocol.PublishRequest{Channel: "idle:0", Data: json.RawMessage(`"e"`), Ephemeral: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e.publish(fmt.Sprintf("idle:%d", i), fmt.Sprint(i))
	}
	for i, a := range answers {
		select {
		case r := <-a:
			if len(r.Publications) != 1 || string(r.Publications[0].Data) != fmt.Sprint(i%5) {
				t.Fatalf("poll %d: %+v", i, r)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("poll %d did not answer", i)
		}
	}
	testkit.WaitFor(t, waitTimeout, "the waiters to go", func() bool { return len(e.n.Channels()) == 0 })
}

// The response written on the event loop is a complete HTTP/1.1 response
// that closes its connection.
func TestLoopResponseHead(t *testing.T) {
	e := setup(t)
	next := e.poll(url.Values{"channel": {"head"}}).Next
	resp, err := e.hc.Get(e.srv.URL + "/poll?" + url.Values{"channel": {"head"}, "since": {next}, "timeout": {"1"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"publications":[],"next":"` + next + `","recovered":true}`
	if resp.StatusCode != http.StatusOK || !resp.Close || resp.ContentLength != int64(len(want)) || string(body) != want {
		t.Fatalf("status %d, close %v, length %d, body %s", resp.StatusCode, resp.Close, resp.ContentLength, body)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s %q, want %q", k, got, v)
		}
	}
}

// Node shutdown answers the waiting long polls at once with what they have.
func TestShutdownAnswersWaitingPolls(t *testing.T) { bothModes(t, testShutdownAnswersWaitingPolls) }

func testShutdownAnswersWaitingPolls(t *testing.T, e *env) {
	next := e.poll(url.Values{"channel": {"bye"}}).Next
	a := e.startPoll(url.Values{"channel": {"bye"}, "since": {next}, "timeout": {"30"}})
	testkit.WaitFor(t, waitTimeout, "the long poll to wait", func() bool { return e.n.Channels()["bye"] == 1 })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-a:
		if len(r.Publications) != 0 || r.Next != next || !r.Recovered {
			t.Fatalf("answer on shutdown: %+v", r)
		}
	case <-time.After(waitTimeout):
		t.Fatal("waiting poll not answered on shutdown")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("answered after %v", d)
	}
}
