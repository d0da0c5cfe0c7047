package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

type answer struct {
	status int
	body   string
	err    error
}

// collect returns a done callback that records answers in the order the
// reader delivers them.
func collect(mu *sync.Mutex, got *[]answer) func(int, []byte, error) {
	return func(status int, body []byte, err error) {
		mu.Lock()
		*got = append(*got, answer{status, string(body), err})
		mu.Unlock()
	}
}

func callN(t *testing.T, pc *pipeConn, base string, i int, done func(int, []byte, error)) {
	t.Helper()
	req, err := newCallRequest(context.Background(), base, "/api/publish", "k", []byte(strconv.Itoa(i)))
	if err != nil {
		t.Fatal(err)
	}
	pc.call(req, done)
}

// writeCalls starts a server answering with handler, dials it and writes
// n calls on one pipeConn; the answers land in *got, in the reader's order.
func writeCalls(t *testing.T, n int, handler http.HandlerFunc, got *[]answer) *pipeConn {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	pc, err := dialPipe(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	for i := range n {
		callN(t, pc, srv.URL, i, collect(&mu, got))
	}
	return pc
}

// Calls go out without waiting for earlier answers, and their answers
// come back matched to them in order.
func TestPipeConnWritesAheadOfAnswers(t *testing.T) {
	const n = 50
	release := make(chan struct{})
	var seen []string
	var got []answer
	pc := writeCalls(t, n, func(w http.ResponseWriter, r *http.Request) {
		<-release // no answer until every call is written
		b := make([]byte, 8)
		k, _ := r.Body.Read(b)
		seen = append(seen, string(b[:k])) // net/http serves one connection's requests one at a time
		w.Write(b[:k])
	}, &got)
	close(release) // reached only if no call waited for an answer
	pc.close()
	if len(got) != n {
		t.Fatalf("%d answers, want %d", len(got), n)
	}
	for i, a := range got {
		if a.err != nil || a.status != http.StatusOK || a.body != strconv.Itoa(i) {
			t.Fatalf("answer %d = %+v, want 200 %q", i, a, strconv.Itoa(i))
		}
		if seen[i] != strconv.Itoa(i) {
			t.Fatalf("server saw call %q in place %d", seen[i], i)
		}
	}
}

// When the server ends the connection after an answer, that answer still
// counts and the calls written behind it fail instead of hanging; the
// connection is then marked broken so the publisher dials a new one.
func TestPipeConnFailsCallsBehindAClose(t *testing.T) {
	release := make(chan struct{})
	var got []answer
	pc := writeCalls(t, 3, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusTooManyRequests)
	}, &got)
	close(release)
	closed := make(chan struct{})
	go func() { pc.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return: calls behind the closed answer hang")
	}
	if len(got) != 3 || got[0].err != nil || got[0].status != http.StatusTooManyRequests {
		t.Fatalf("answers %+v: want the first to carry the 429", got)
	}
	for _, a := range got[1:] {
		if a.err == nil {
			t.Fatalf("answers %+v: want the calls behind the close to fail", got)
		}
	}
	if !pc.broken.Load() {
		t.Fatal("connection not marked broken")
	}
}
