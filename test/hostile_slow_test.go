package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// These tests measure time and memory, so they do not run in parallel with
// the others: the parallel hostile tests wait until they are done.

// TestHostileSlowHandshakes holds 30 connections to each of /ws, /sse and
// /poll that send a request line and then one header byte every 200 ms: the
// server must drop each within read_header_timeout (1s) plus slack, and
// keep serving others meanwhile. WebSockets that upgrade and never send
// connect must be closed with 4500 "connect timeout" after connect_timeout.
// Requests to /publish and /api/publish that send their headers and then
// one body byte every 200 ms must be answered 400 with code 107 once
// read_header_timeout has passed since their headers, and closed.
func TestHostileSlowHandshakes(t *testing.T) {
	bin := hostileBinary(t)
	s := startHostile(t, bin)
	const perPath, silent, slowBodies, closeWithin = 30, 5, 10, 5 * time.Second
	paths := []string{"/ws", "/sse?channel=room:x", "/poll?channel=room:x&timeout=1"}
	bodyPaths := map[string]string{
		"/publish":     "Authorization: Bearer " + userToken(t, "slow-body"),
		"/api/publish": "Authorization: apikey " + apiKey,
	}

	// The silent WebSockets: upgraded at once, since the token may come in
	// the connect command, which they never send.
	type silentResult struct {
		o   closeOutcome
		age time.Duration
		err error
	}
	silentDone := make(chan silentResult, silent)
	var wg sync.WaitGroup
	for range silent {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		dialed := time.Now()
		c := s.dialWS(t, ctx, "", nil)
		cancel()
		wg.Go(func() {
			o, err := waitClose(c, hostileConnectWait+closeWithin)
			silentDone <- silentResult{o, time.Since(dialed), err}
		})
	}

	type lorisResult struct {
		path  string
		after time.Duration
		err   error
	}
	total := perPath * len(paths)
	lorisDone := make(chan lorisResult, total)
	var closed atomic.Int32
	for _, path := range paths {
		for range perPath {
			conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			wg.Go(func() {
				after, err := slowLoris(conn, path, closeWithin)
				closed.Add(1)
				lorisDone <- lorisResult{path, after, err}
			})
		}
	}

	bodyDone := make(chan bodyResult, slowBodies*len(bodyPaths))
	for path, auth := range bodyPaths {
		for range slowBodies {
			conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			wg.Go(func() {
				r := slowBody(conn, path, auth, closeWithin)
				closed.Add(1)
				bodyDone <- r
			})
		}
	}
	total += slowBodies * len(bodyPaths)

	openAtStart := total - int(closed.Load())
	s.assertHealthy(t)
	t.Logf("health check passed with %d of %d slow handshakes open at its start, %d at its end", openAtStart, total, total-int(closed.Load()))
	if openAtStart == 0 {
		t.Errorf("every slow handshake was closed before the health check began: the check did not run during the attack")
	}

	wg.Wait()
	close(lorisDone)
	close(silentDone)
	close(bodyDone)
	bodySlowest := map[string]time.Duration{}
	for r := range bodyDone {
		switch {
		case r.err != nil:
			t.Errorf("slow body to %s: %v", r.path, r.err)
		case r.status != http.StatusBadRequest || r.code != 107 || !strings.Contains(r.message, "not received within 1s"):
			t.Errorf("slow body to %s answered %d code %d %q, want 400 code 107 \"... not received within 1s\"", r.path, r.status, r.code, r.message)
		// The client times from after its write returns, the server from
		// when it read the headers, which can be a little earlier.
		case r.answered < hostileHeaderLimit-50*time.Millisecond || r.answered > hostileHeaderLimit+closeWithin:
			t.Errorf("slow body to %s answered %v after its headers, want between read_header_timeout %v and %v", r.path, r.answered, hostileHeaderLimit, hostileHeaderLimit+closeWithin)
		default:
			bodySlowest[r.path] = max(bodySlowest[r.path], r.closed)
		}
	}
	for p, d := range bodySlowest {
		t.Logf("slow bodies to %s answered 400 107 and closed within %v of their headers", p, d)
	}
	slowest := map[string]time.Duration{}
	fastest := map[string]time.Duration{}
	for r := range lorisDone {
		if r.err != nil {
			t.Errorf("slow handshake to %s: %v", r.path, r.err)
			continue
		}
		slowest[r.path] = max(slowest[r.path], r.after)
		if f, ok := fastest[r.path]; !ok || r.after < f {
			fastest[r.path] = r.after
		}
	}
	for _, p := range paths {
		t.Logf("slow handshakes to %s closed after %v to %v (read_header_timeout %v)", p, fastest[p], slowest[p], hostileHeaderLimit)
	}
	for r := range silentDone {
		switch {
		case r.err != nil:
			t.Errorf("silent WebSocket: %v", r.err)
		case r.o.code != 4500 || r.o.reason != "connect timeout":
			t.Errorf("silent WebSocket closed with %d %q, want 4500 \"connect timeout\"", r.o.code, r.o.reason)
		case r.age < hostileConnectWait || r.age > hostileConnectWait+closeWithin:
			t.Errorf("silent WebSocket closed %v after its dial, want between connect_timeout %v and %v", r.age, hostileConnectWait, hostileConnectWait+closeWithin)
		default:
			t.Logf("silent WebSocket closed with 4500 %q %v after its dial", r.o.reason, r.age)
		}
	}
	s.assertHealthy(t)
}

// slowLoris sends a request line for path on conn and then one header byte
// every 200 ms, never finishing the headers, until the server closes the
// connection. It reports how long that took, or an error if the connection
// is still open after limit.
func slowLoris(conn net.Conn, path string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	if _, err := conn.Write([]byte("GET " + path + " HTTP/1.1\r\n")); err != nil {
		return 0, fmt.Errorf("request line: %v", err)
	}
	stop := make(chan struct{})
	var trickle sync.WaitGroup
	trickle.Go(func() {
		header := "Host: 127.0.0.1\r\nX-Slow-Loris: " + strings.Repeat("z", 100)
		// The 200 ms between bytes is the attack itself, not a wait.
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := range len(header) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{header[i]}); err != nil {
				return
			}
		}
	})
	defer func() {
		close(stop)
		trickle.Wait()
	}()
	if err := conn.SetReadDeadline(start.Add(limit)); err != nil {
		return 0, err
	}
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			after := time.Since(start)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return after, fmt.Errorf("still open after %v", limit)
			}
			return after, nil // EOF or reset: the server dropped it
		}
	}
}

// bodyResult is how the server ended a slow body: its answer, and when it
// answered and closed, from the end of the request's headers.
type bodyResult struct {
	path             string
	status           int
	code             uint32
	message          string
	answered, closed time.Duration
	err              error
}

// slowBody sends a POST of a 200-byte JSON body to path on conn, with its
// headers (auth among them) at once and then one body byte every 200 ms,
// until the server answers and closes the connection. It fails if either
// has not happened after limit.
func slowBody(conn net.Conn, path, auth string, limit time.Duration) bodyResult {
	r := bodyResult{path: path}
	head := "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + auth + "\r\nContent-Length: 200\r\n\r\n"
	if _, err := conn.Write([]byte(head + `{"channel":"room:slow-body","data":"`)); err != nil {
		r.err = fmt.Errorf("headers: %v", err)
		return r
	}
	start := time.Now()
	defer testkit.Trickle(conn, []byte(strings.Repeat("z", 200)), 200*time.Millisecond)()
	if err := conn.SetReadDeadline(start.Add(limit)); err != nil {
		r.err = err
		return r
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		r.err = fmt.Errorf("no answer within %v: %v", limit, err)
		return r
	}
	r.answered = time.Since(start)
	r.status = resp.StatusCode
	var e struct {
		Error protocol.Error `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if err != nil {
		r.err = fmt.Errorf("HTTP %d with a body that is not a JSON error: %v", resp.StatusCode, err)
		return r
	}
	r.code, r.message = e.Error.Code, e.Error.Message
	// The server must read no more of the trickle: it closes (EOF) or
	// resets the connection.
	if _, err := io.Copy(io.Discard, br); errors.Is(err, os.ErrDeadlineExceeded) {
		r.err = fmt.Errorf("answered %d %d, then still open after %v", r.status, r.code, limit)
		return r
	}
	r.closed = time.Since(start)
	return r
}

// TestHostileNonReaders subscribes 20 clients that then never read and one
// that reads everything to a channel, and publishes 3,600 (or more, see
// below) publications of 1.5 KiB: the reader must get every offset once,
// in order, the server's memory must stay bounded, and the non-readers must
// be disconnected as slow consumers.
func TestHostileNonReaders(t *testing.T) {
	bin := hostileBinary(t)
	s := startHostile(t, bin)
	const channel, stuck, publishers, maxGrowth = "room:flood", 20, 4, 64 << 20
	// At least 3,600 publications of 1.5 KiB, 5.8 MB per subscriber, and
	// always a megabyte more than the kernel may buffer on a connection
	// whose peer does not read (its send buffer grows up to tcp_wmem's
	// maximum, 4 MiB by default), so that the non-readers' backlog reaches
	// the server's own queue and overflows it.
	total := max(3600, (tcpSendBufferMax(t)+1<<20)/1600)
	total -= total % publishers

	subscribe := func(user string) *websocket.Conn {
		c := s.connectWS(t, user)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sendText(t, ctx, c, command(2, "subscribe", map[string]string{"channel": channel}))
		r, _ := awaitReply(t, c, 2, 10*time.Second)
		expectResult(t, user+" subscribe", r)
		return c
	}
	reader := subscribe("reader")
	stuckConns := make([]*websocket.Conn, stuck)
	for i := range stuckConns {
		// From here on, nothing reads these connections.
		stuckConns[i] = subscribe(fmt.Sprintf("stuck-%d", i))
	}
	testkit.WaitFor(t, 10*time.Second, "every client counted", func() bool { return s.numClients(t) == stuck+1 })
	rssStart := readVmStat(t, s.PID(), "VmRSS")

	// The reader is healthy by construction: the publishers never run more
	// than lead publications ahead of it (about 165 KB, less than the
	// transport's 256 KiB backlog bound holds even when the kernel buffers
	// nothing), so the server has no cause to drop it, however the machine
	// schedules this process. The non-readers get every publication all the
	// same.
	const lead = 100
	inFlight := make(chan struct{}, lead)
	readerDone := make(chan error, 1)
	readerGone := make(chan struct{})
	var acked atomic.Int64
	go func() {
		defer close(readerGone)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		next := uint64(1)
		for next <= uint64(total) {
			frames, err := readFrames(ctx, reader)
			if err != nil {
				readerDone <- fmt.Errorf("reader stopped after offset %d, %d acknowledged: %v (close status %d)", next-1, acked.Load(), err, websocket.CloseStatus(err))
				return
			}
			for _, f := range frames {
				if f.Type != "publication" || f.Channel != channel {
					continue
				}
				if f.Offset != next {
					readerDone <- fmt.Errorf("reader got offset %d after %d (lost, repeated or out of order)", f.Offset, next-1)
					return
				}
				next++
				select {
				case <-inFlight:
				default:
					readerDone <- fmt.Errorf("reader got offset %d, more publications than were published", f.Offset)
					return
				}
			}
		}
		readerDone <- nil
	}()

	start := time.Now()
	pad := strings.Repeat("p", 1536)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range total / publishers {
				select {
				case inFlight <- struct{}{}:
				case <-readerGone:
					return
				}
				if _, err := s.apiPublish(channel, map[string]any{"p": p, "i": i, "pad": pad}); err != nil {
					errs <- err
					return
				}
				acked.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	published := time.Since(start)
	select {
	case err := <-readerDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("reader did not finish")
	}
	t.Logf("%d publications of %d bytes published in %v and read in order by the reader in %v", total, len(pad), published, time.Since(start))

	peak := readVmStat(t, s.PID(), "VmHWM")
	t.Logf("server RSS %d MiB at start, peak %d MiB (growth %d MiB, limit %d MiB)", rssStart>>20, peak>>20, (peak-rssStart)>>20, maxGrowth>>20)
	if peak-rssStart >= maxGrowth {
		t.Errorf("server RSS grew by %d MiB, want under %d MiB", (peak-rssStart)>>20, maxGrowth>>20)
	}

	testkit.WaitFor(t, 15*time.Second, "non-readers disconnected", func() bool { return s.numClients(t) == 1 })
	t.Logf("non-readers disconnected %v after the first publish", time.Since(start))
	// What a non-reader finds when it reads at last: the backlog the kernel
	// held, then the slow-consumer close.
	type drained struct {
		bytes int
		code  websocket.StatusCode
		err   error
	}
	outcomes := make(chan drained, stuck)
	var readers sync.WaitGroup
	for _, c := range stuckConns {
		readers.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var d drained
			for {
				_, msg, err := c.Read(ctx)
				if err != nil {
					d.code = websocket.CloseStatus(err)
					if d.code == -1 {
						d.err = err
					}
					break
				}
				d.bytes += len(msg)
			}
			outcomes <- d
		})
	}
	readers.Wait()
	close(outcomes)
	codes := map[websocket.StatusCode]int{}
	most := 0
	for d := range outcomes {
		codes[d.code]++
		most = max(most, d.bytes)
		if d.code != 4001 {
			t.Errorf("non-reader closed with %d (%v) after %d bytes, want 4001 slow consumer", d.code, d.err, d.bytes)
		}
	}
	t.Logf("non-readers' close codes %v, at most %d KiB delivered before the close", codes, most>>10)
	s.assertHealthy(t)
}

// tcpSendBufferMax is the largest send buffer the kernel gives a TCP
// socket (the maximum of net.ipv4.tcp_wmem), 4 MiB if it cannot be read.
func tcpSendBufferMax(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		return 4 << 20
	}
	fields := strings.Fields(string(b))
	var n int
	if len(fields) != 3 {
		return 4 << 20
	}
	if _, err := fmt.Sscan(fields[2], &n); err != nil {
		t.Fatalf("tcp_wmem %q: %v", b, err)
	}
	return n
}

// TestHostileSlowBodiesOnRefusals trickles request bodies to paths that
// refuse the request without reading its body: a wrong API key, a client
// publish from a foreign origin. Each must be answered with its refusal and
// closed within read_header_timeout plus slack, not held open while the
// server reads the trickle to its end.
func TestHostileSlowBodiesOnRefusals(t *testing.T) {
	bin := hostileBinary(t)
	s := startHostile(t, bin)
	const closeWithin = 5 * time.Second
	cases := []struct {
		path, headers string
		status        int
		code          uint32
	}{
		{"/api/publish", "Authorization: apikey wrong-key", http.StatusUnauthorized, 101},
		{"/publish", "Origin: https://evil.example\r\nAuthorization: Bearer " + userToken(t, "slow-refused"), http.StatusForbidden, 103},
	}
	done := make(chan bodyResult, 3*len(cases))
	var wg sync.WaitGroup
	for _, c := range cases {
		for range 3 {
			conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			wg.Go(func() { done <- slowBody(conn, c.path, c.headers, hostileHeaderLimit+closeWithin) })
		}
	}
	s.assertHealthy(t)
	wg.Wait()
	close(done)
	want := map[string]struct {
		status int
		code   uint32
	}{}
	for _, c := range cases {
		want[c.path] = struct {
			status int
			code   uint32
		}{c.status, c.code}
	}
	for r := range done {
		w := want[r.path]
		switch {
		case r.err != nil:
			t.Errorf("slow body to %s: %v", r.path, r.err)
		case r.status != w.status || r.code != w.code:
			t.Errorf("slow body to %s answered %d code %d %q, want %d code %d", r.path, r.status, r.code, r.message, w.status, w.code)
		case r.closed > hostileHeaderLimit+closeWithin:
			t.Errorf("slow body to %s closed %v after its headers", r.path, r.closed)
		}
	}
	s.assertHealthy(t)
}
