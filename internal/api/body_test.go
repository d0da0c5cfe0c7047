package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// bodyServer serves decodeBody of a PublishRequest at /, answering the
// decoded channel or the error, on a real server whose ReadHeaderTimeout is
// limit. After decoding, the handler waits hold before answering, and fails
// if the request's context ends meanwhile.
func bodyServer(t *testing.T, limit, hold time.Duration) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req protocol.PublishRequest
		if err := decodeBody(w, r, 1<<10, &req); err != nil {
			protocol.WriteHTTPError(w, err)
			return
		}
		if hold > 0 {
			select {
			case <-r.Context().Done():
				protocol.WriteHTTPError(w, protocol.ErrInternal.With("context ended after the body was read: %v", r.Context().Err()))
				return
			case <-time.After(hold):
			}
		}
		writeJSON(w, map[string]string{"channel": req.Channel})
	}))
	s.Config.ReadHeaderTimeout = limit
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// TestSlowBodyIsCutOff: a client that sends its headers and then trickles
// the body is answered 400 with code 107 once the server's
// ReadHeaderTimeout has passed, and the connection is closed.
func TestSlowBodyIsCutOff(t *testing.T) {
	const limit = 300 * time.Millisecond
	s := bodyServer(t, limit, 0)
	conn, err := net.DialTimeout("tcp", s.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"chan")
	defer testkit.Trickle(conn, []byte(strings.Repeat(" ", 200)), 50*time.Millisecond)()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to the slow body: %v", err)
	}
	answered := time.Since(start)
	var e struct{ Error protocol.Error }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || e.Error.Code != protocol.ErrBadRequest.Code || !strings.Contains(e.Error.Message, "not received within") {
		t.Errorf("answered %d %+v, want 400 with code 107 saying the body was not received in time", resp.StatusCode, e.Error)
	}
	if !resp.Close {
		t.Errorf("answer does not say Connection: close")
	}
	if answered < limit || answered > limit+2*time.Second {
		t.Errorf("answered after %v, want soon after the %v bound", answered, limit)
	}
	// Whatever else the client sends, the server reads no more: it closes
	// (EOF) or resets the connection, never leaves it open.
	if _, err := io.Copy(io.Discard, br); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection still open after the answer")
	}
	t.Logf("slow body answered %v after its headers, connection closed %v after them", answered, time.Since(start))
}

// TestBodyDeadlineEndsWithTheBody: a body that arrives in time leaves no
// deadline behind: a handler that takes longer than the bound after reading
// it keeps its context, and the connection serves the next request.
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	const limit = 200 * time.Millisecond
	s := bodyServer(t, limit, 3*limit)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var local []string
	for i := range 2 {
		body := fmt.Sprintf(`{"channel":"c%d","data":1}`, i)
		req, err := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var conn string
		req = req.WithContext(httptraceConn(req, &conn))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, fmt.Appendf(nil, `"c%d"`, i)) {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		local = append(local, conn)
	}
	if local[0] != local[1] {
		t.Errorf("second request on %s, first on %s: the connection was not kept", local[1], local[0])
	}
}

func TestDecodeBodyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		code       uint32
	}{
		{"empty", "", 0},
		{"object", `{"channel":"a","data":{"x":1}}`, 0},
		{"unknown field", `{"chanel":"a"}`, protocol.ErrBadRequest.Code},
		{"two objects", `{"channel":"a"}{"channel":"b"}`, protocol.ErrBadRequest.Code},
		{"trailing garbage", `{"channel":"a"} x`, protocol.ErrBadRequest.Code},
		{"not JSON", `channel=a`, protocol.ErrBadRequest.Code},
		{"wrong type", `{"channel":1}`, protocol.ErrBadRequest.Code},
		{"too large", `{"channel":"` + strings.Repeat("a", 2000) + `"}`, protocol.ErrMessageTooLarge.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req protocol.PublishRequest
			err := decodeBody(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body)), 1<<10, &req)
			if got := errCode(err); got != tc.code {
				t.Errorf("error %v, want code %d", err, tc.code)
			}
		})
	}
}

// errCode is the protocol code of err, 0 for nil and 1 for an error
// without one.
func errCode(err error) uint32 {
	if err == nil {
		return 0
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return 1
	}
	return pe.Code
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzDecodeBody feeds hostile HTTP request bodies to decodeBody: it never
// panics, reads no more than the bound (plus the one byte that tells it the
// bound was passed), accepts nothing larger, and every failure carries a
// protocol code a client can act on: 107 for a malformed body, 114 for one
// too large.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"channel":"a","data":{"x":1}}`, `{"channel":"a","data":1}{}`, `{"chanel":"a"}`,
		`{"channel":"a","tags":{"k":"v"},"idempotency_key":"k"}`, `[1,2]`, `{"data":"\ud800"}`,
		`{"channel":"` + strings.Repeat("a", 300) + `"}`, "\xff\xfe", `{"data":` + strings.Repeat("[", 100) + `}`,
	} {
		f.Add([]byte(s))
	}
	const maxBytes = 256
	f.Fuzz(func(t *testing.T, body []byte) {
		src := &countingReader{r: bytes.NewReader(body)}
		var req protocol.PublishRequest
		err := decodeBody(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", src), maxBytes, &req)
		if src.n > maxBytes+1 {
			t.Fatalf("read %d bytes of a body bounded at %d", src.n, maxBytes)
		}
		switch code := errCode(err); code {
		case 0:
			if len(body) > maxBytes {
				t.Fatalf("accepted a body of %d bytes, bound %d", len(body), maxBytes)
			}
			if req.Data != nil && !json.Valid(req.Data) {
				t.Fatalf("accepted data that is not JSON: %q", req.Data)
			}
		case protocol.ErrBadRequest.Code:
		case protocol.ErrMessageTooLarge.Code:
			if len(body) <= maxBytes {
				t.Fatalf("a body of %d bytes refused as larger than %d: %v", len(body), maxBytes, err)
			}
		default:
			t.Fatalf("error %v carries code %d, want 107 or 114", err, code)
		}
	})
}

// httptraceConn returns req's context, tracing into local the local address
// of the connection the request goes on.
func httptraceConn(req *http.Request, local *string) context.Context {
	return httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { *local = info.Conn.LocalAddr().String() },
	})
}
