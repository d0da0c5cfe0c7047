package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testkit"
)

const bodyLimit = 300 * time.Millisecond

// trickle sends a POST whose 100-byte body comes one byte every 50 ms, and
// reports when the server answered and when it closed the connection,
// giving up after wait.
func trickle(t *testing.T, url string, wait time.Duration) (status int, answered, closed time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	defer testkit.Trickle(conn, []byte(strings.Repeat("z", 100)), 50*time.Millisecond)()
	_ = conn.SetReadDeadline(start.Add(wait))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %v: %v", wait, err)
	}
	answered = time.Since(start)
	resp.Body.Close()
	if _, err := io.Copy(io.Discard, br); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("answered %d, then still open after %v", resp.StatusCode, wait)
	}
	return resp.StatusCode, answered, time.Since(start)
}

// A refusal that never reads the body is answered, and its connection
// closed, once the body is overdue, instead of when net/http has read the
// whole trickle (100 bytes at 50 ms: 5 s).
func TestBodyDeadlineClosesUnreadTrickle(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"refused unread": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusUnauthorized)
		},
		// A body that fails to decode at its first byte leaves the rest of
		// the trickle unread too.
		"malformed": func(w http.ResponseWriter, r *http.Request) {
			var v any
			if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(bodyDeadline(h, bodyLimit))
			defer srv.Close()
			status, answered, closed := trickle(t, srv.URL, 3*time.Second)
			// net/http sends the answer once it gave up on the rest of the body.
			if status != http.StatusUnauthorized || answered > bodyLimit+time.Second {
				t.Fatalf("answered %d after %v, want 401 within about %v", status, answered, bodyLimit)
			}
			if closed > bodyLimit+time.Second {
				t.Fatalf("closed %v after the headers, want about %v", closed, bodyLimit)
			}
		})
	}
}

// A handler that read its whole body keeps its request context past the
// deadline, and a request without a body has no deadline at all.
func TestBodyDeadlineSparesReadBodiesAndGets(t *testing.T) {
	result := make(chan error, 1)
	srv := httptest.NewServer(bodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			result <- err
			return
		}
		// Working past the deadline is the point of the test.
		select {
		case <-r.Context().Done():
			result <- r.Context().Err()
		case <-time.After(3 * bodyLimit):
			result <- nil
		}
	}), bodyLimit))
	defer srv.Close()
	for _, req := range []func() (*http.Response, error){
		func() (*http.Response, error) { return http.Post(srv.URL, "text/plain", strings.NewReader("body")) },
		func() (*http.Response, error) { return http.Get(srv.URL) },
	} {
		resp, err := req()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if err := <-result; err != nil {
			t.Fatalf("handler: %v", err)
		}
	}
}
