package poll_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// setup starts a node on the memory engine and a poll server in front of it.
// Cleanup shuts everything down and then checks that no goroutine is left.
func setup(t *testing.T) *env {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	n, err := node.New(node.Config{Engine: memory.New(memory.Config{}), Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(poll.New(poll.Config{Node: n}))
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
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

func TestLongPollWakesOnPublication(t *testing.T) {
	e := setup(t)
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

func TestLongPollTimesOut(t *testing.T) {
	e := setup(t)
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
