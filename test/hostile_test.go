package test

// The hostile-input suite: black-box tests of the built herald binary
// against malformed tokens, frames and handshakes, slow and non-reading
// clients and foreign origins. Every case asserts the exact rejection and
// then that the server still serves others (assertHealthy). This file holds
// the harness; the cases live in hostile_*_test.go by concept.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

// The server's limits, as hostileConfig sets them.
const (
	hostileSecret      = "hostile-suite-hmac-secret-0123456789-abcdef"
	hostileAudience    = "herald-test"
	hostileIssuer      = "herald-tests"
	hostileOrigin      = "https://app.example"
	hostileCommandRate = 50
	hostileBurst       = 50
	hostileMaxMessage  = 4096
	hostileHeaderLimit = time.Second // read_header_timeout
	hostileConnectWait = 2 * time.Second
	// healthDeadline bounds one assertHealthy round trip.
	healthDeadline = 5 * time.Second
)

var hostileConfig = hostileYAML(hostileCommandRate, hostileBurst)

// hostileYAML is the hostile suite's server configuration with the given
// command rate and burst.
func hostileYAML(commandRate, commandBurst int) string {
	return fmt.Sprintf(`
addr: 127.0.0.1:0
engine: memory
api_key: %s
allow_anonymous: false
read_header_timeout: 1s
connect_timeout: 2s
max_publication_size: 2048
max_message_size: %d
max_queue_bytes: 65536
command_rate: %d
command_burst: %d
connection_rate: 1000
connection_burst: 1000
allowed_origins: [%q]
auth:
  hmac_secret: %q
  audience: %s
  issuer: %s
namespaces:
  - name: room
    history_size: 100
    history_ttl: 1h
    presence: true
    subscribe: authenticated
    publish: authenticated
    history: authenticated
    presence_access: authenticated
  - name: secret
    private: true
    history_size: 100
    history_ttl: 1h
    subscribe: authenticated
  - name: dm
    user_limited: true
    history_size: 100
    history_ttl: 1h
    subscribe: authenticated
    publish: authenticated
`, apiKey, hostileMaxMessage, commandRate, commandBurst, hostileOrigin, hostileSecret, hostileAudience, hostileIssuer)
}

// hostileBin is the herald binary, built once and shared by the hostile
// tests that run at the same time: linking it takes seconds. The last test
// to release it removes it.
var hostileBin struct {
	sync.Mutex
	dir, path string
	refs      int
}

// buildDirTB is t with a TempDir that outlives t, for a binary other tests
// share.
type buildDirTB struct {
	testing.TB
	dir string
}

func (b buildDirTB) TempDir() string { return b.dir }

// hostileBinary returns the herald binary, building it if no running test
// holds it. Tests call it before t.Parallel, so the parallel ones hold it
// while the sequential ones run, and one build serves the whole suite.
func hostileBinary(t *testing.T) string {
	t.Helper()
	hostileBin.Lock()
	defer hostileBin.Unlock()
	if hostileBin.refs == 0 {
		dir, err := os.MkdirTemp("", "herald-hostile-")
		if err != nil {
			t.Fatal(err)
		}
		built := false
		defer func() {
			if !built { // BuildHerald failed the test
				_ = os.RemoveAll(dir)
			}
		}()
		hostileBin.dir = dir
		hostileBin.path = testkit.BuildHerald(buildDirTB{TB: t, dir: dir})
		built = true
	}
	hostileBin.refs++
	t.Cleanup(func() {
		hostileBin.Lock()
		defer hostileBin.Unlock()
		if hostileBin.refs--; hostileBin.refs == 0 {
			_ = os.RemoveAll(hostileBin.dir)
			hostileBin.dir, hostileBin.path = "", ""
		}
	})
	return hostileBin.path
}

// hostileServer is a herald process running hostileConfig.
type hostileServer struct {
	*testkit.Herald
	// http has a timeout; ws has none, since coder/websocket would apply it
	// to the handshake only, and contexts bound every WebSocket call anyway.
	http, ws *http.Client
	healthN  atomic.Int64
}

// startHostile starts bin with hostileConfig. The process is killed and the
// clients' idle connections closed when the test ends.
func startHostile(t *testing.T, bin string) *hostileServer {
	t.Helper()
	return startHostileYAML(t, bin, hostileConfig)
}

// startHostileYAML is startHostile with another configuration.
func startHostileYAML(t *testing.T, bin, yaml string) *hostileServer {
	t.Helper()
	config := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &hostileServer{
		Herald: testkit.StartHerald(t, bin, "--config", config),
		http:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second},
		ws:     &http.Client{Transport: &http.Transport{}},
	}
	t.Cleanup(func() {
		s.http.CloseIdleConnections()
		s.ws.CloseIdleConnections()
	})
	return s
}

func (s *hostileServer) wsURL(query string) string { return "ws://" + s.Addr + "/ws" + query }

// --- tokens ---

// mint signs a token with the server's secret, audience and issuer unless
// o sets them.
func mint(t *testing.T, o auth.MintOptions) string {
	t.Helper()
	if o.Secret == nil {
		o.Secret = []byte(hostileSecret)
	}
	if o.Audience == "" {
		o.Audience = hostileAudience
	}
	if o.Issuer == "" {
		o.Issuer = hostileIssuer
	}
	tok, err := auth.Mint(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// userToken is a valid connection token for user, good for an hour.
func userToken(t *testing.T, user string) string {
	return mint(t, auth.MintOptions{UserID: user, TTL: time.Hour})
}

// subToken is a valid subscription token letting user subscribe to channel.
func subToken(t *testing.T, user, channel string) string {
	return mint(t, auth.MintOptions{UserID: user, Channel: channel, TTL: time.Hour})
}

var b64 = base64.RawURLEncoding

func jsonPart(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b64.EncodeToString(b)
}

// handSigned builds an HS256 token from claims without the JWT library, so
// a test can set claims Mint never writes (nbf) or leave out ones it always
// writes.
func handSigned(secret string, claims map[string]any) string {
	unsigned := jsonPart(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + jsonPart(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + b64.EncodeToString(mac.Sum(nil))
}

// algNone is an unsigned token, base64url(header).base64url(claims)
// followed by a dot and no signature.
func algNone(claims map[string]any) string {
	return jsonPart(map[string]string{"alg": "none", "typ": "JWT"}) + "." + jsonPart(claims) + "."
}

// goodClaims are claims the server accepts for user, as a map to alter.
func goodClaims(user string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{"sub": user, "aud": hostileAudience, "iss": hostileIssuer, "iat": now, "exp": now + 3600}
}

// --- HTTP ---

// httpAnswer is the start of an HTTP response: status, headers and, for an
// error, the protocol error of its JSON body.
type httpAnswer struct {
	status int
	header http.Header
	err    protocol.Error
}

// request sends a request and reads its answer. The body of a 200 is not
// read, since it may be an endless event stream.
func (s *hostileServer) request(t *testing.T, method, target string, header http.Header, body []byte) httpAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	a := httpAnswer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error protocol.Error `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("%s %s: status %d with a body that is not a JSON error: %v", method, target, resp.StatusCode, err)
		}
		a.err = e.Error
	}
	return a
}

// expectHTTPError checks that a is the error status and code.
func expectHTTPError(t *testing.T, what string, a httpAnswer, status int, code uint32) {
	t.Helper()
	if a.status != status || a.err.Code != code {
		t.Errorf("%s: HTTP %d code %d (%q), want HTTP %d code %d", what, a.status, a.err.Code, a.err.Message, status, code)
	}
}

func bearer(token string) http.Header {
	if token == "" {
		return http.Header{}
	}
	return http.Header{"Authorization": {"Bearer " + token}}
}

// apiPublish publishes data to channel through the server API.
func (s *hostileServer) apiPublish(channel string, data any) (ack, error) {
	var a ack
	err := apiCall(s.http, s.URL(""), "/api/publish", map[string]any{"channel": channel, "data": data}, &a)
	return a, err
}

// numClients is the node's client count from /api/info.
func (s *hostileServer) numClients(t *testing.T) int {
	t.Helper()
	var info struct {
		Nodes []struct {
			NumClients int `json:"num_clients"`
		} `json:"nodes"`
	}
	if err := apiCall(s.http, s.URL(""), "/api/info", map[string]any{}, &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Nodes) != 1 {
		t.Fatalf("/api/info lists %d nodes", len(info.Nodes))
	}
	return info.Nodes[0].NumClients
}

// --- WebSocket, with coder/websocket ---

// wsFrame is any frame the server sends: a reply or a push.
type wsFrame struct {
	ID      uint32          `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *protocol.Error `json:"error"`
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
}

// dialWS opens a WebSocket to the server, closed when the test ends.
func (s *hostileServer) dialWS(t *testing.T, ctx context.Context, query string, header http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, s.wsURL(query), &websocket.DialOptions{HTTPClient: s.ws, HTTPHeader: header})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: HTTP %d: %v", s.wsURL(query), status, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// dialRefused dials a WebSocket the server must refuse before the upgrade,
// returning the HTTP answer.
func (s *hostileServer) dialRefused(t *testing.T, query string, header http.Header) httpAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.wsURL(query), &websocket.DialOptions{HTTPClient: s.ws, HTTPHeader: header})
	if err == nil {
		_ = c.CloseNow()
		t.Fatalf("dial %s was upgraded, want it refused", s.wsURL(query))
	}
	if resp == nil {
		t.Fatalf("dial %s: no HTTP response: %v", s.wsURL(query), err)
	}
	a := httpAnswer{status: resp.StatusCode, header: resp.Header}
	var e struct {
		Error protocol.Error `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("dial %s: HTTP %d with a body that is not a JSON error: %v", s.wsURL(query), resp.StatusCode, err)
	}
	a.err = e.Error
	return a
}

func sendText(t *testing.T, ctx context.Context, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %.80q: %v", msg, err)
	}
}

func command(id uint32, method string, params any) string {
	b, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// readFrames reads one message and splits it into frames.
func readFrames(ctx context.Context, c *websocket.Conn) ([]wsFrame, error) {
	typ, msg, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, fmt.Errorf("server sent a %v message", typ)
	}
	var out []wsFrame
	for _, line := range bytes.Split(msg, []byte("\n")) {
		var f wsFrame
		if err := json.Unmarshal(line, &f); err != nil {
			return nil, fmt.Errorf("server sent a frame that is not JSON: %.200q", line)
		}
		out = append(out, f)
	}
	return out, nil
}

// closeOutcome is how a connection ended: the close frame's code and
// reason (code -1 without a close frame), after frames.
type closeOutcome struct {
	frames []wsFrame
	code   websocket.StatusCode
	reason string
	// after is how long the server took to close, from readUntilClose's call.
	after time.Duration
}

// reply returns the reply to command id among the frames read.
func (o closeOutcome) reply(id uint32) (wsFrame, bool) {
	for _, f := range o.frames {
		if f.ID == id {
			return f, true
		}
	}
	return wsFrame{}, false
}

// readUntilClose reads every frame until the server closes the connection,
// failing the test if it is still open after wait.
func readUntilClose(t *testing.T, c *websocket.Conn, wait time.Duration) closeOutcome {
	t.Helper()
	o, err := waitClose(c, wait)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// waitClose is readUntilClose for goroutines other than the test's.
func waitClose(c *websocket.Conn, wait time.Duration) (closeOutcome, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out closeOutcome
	for {
		frames, err := readFrames(ctx, c)
		out.frames = append(out.frames, frames...)
		if err == nil {
			continue
		}
		out.after = time.Since(start)
		if ctx.Err() != nil {
			return out, fmt.Errorf("connection still open after %v (%d frames read)", wait, len(out.frames))
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			out.code, out.reason = ce.Code, ce.Reason
		} else {
			out.code = -1
			out.reason = err.Error()
		}
		return out, nil
	}
}

// expectClose checks the close code of o.
func expectClose(t *testing.T, what string, o closeOutcome, code websocket.StatusCode) {
	t.Helper()
	if o.code != code {
		t.Errorf("%s: connection closed with %d (%q), want %d", what, o.code, o.reason, code)
	}
}

// awaitReply reads until the reply to command id, failing the test if the
// connection closes or wait passes first. Pushes and other replies read on
// the way are returned too.
func awaitReply(t *testing.T, c *websocket.Conn, id uint32, wait time.Duration) (wsFrame, []wsFrame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var seen []wsFrame
	for {
		frames, err := readFrames(ctx, c)
		if err != nil {
			t.Fatalf("waiting for the reply to command %d: %v (close status %d)", id, err, websocket.CloseStatus(err))
		}
		for _, f := range frames {
			if f.ID == id {
				return f, seen
			}
			seen = append(seen, f)
		}
	}
}

// expectResult checks that reply f succeeded.
func expectResult(t *testing.T, what string, f wsFrame) {
	t.Helper()
	if f.Error != nil || f.Result == nil {
		t.Fatalf("%s: reply %+v, want a result", what, f.Error)
	}
}

// expectErrorReply checks that reply f is error code.
func expectErrorReply(t *testing.T, what string, f wsFrame, code uint32) {
	t.Helper()
	if f.Error == nil || f.Error.Code != code {
		t.Errorf("%s: reply %s / %+v, want error %d", what, f.Result, f.Error, code)
	}
}

// connectWS opens a WebSocket and connects as user with a valid token.
func (s *hostileServer) connectWS(t *testing.T, user string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.dialWS(t, ctx, "", nil)
	sendText(t, ctx, c, command(1, "connect", map[string]string{"token": userToken(t, user)}))
	r, _ := awaitReply(t, c, 1, 10*time.Second)
	expectResult(t, "connect as "+user, r)
	return c
}

// assertHealthy checks that the server still serves others: /healthz says
// 200, and a fresh, validly authenticated WebSocket client connects,
// subscribes to a room channel and receives a publication made through the
// server API, all within healthDeadline.
func (s *hostileServer) assertHealthy(t *testing.T) {
	t.Helper()
	start := time.Now()
	if a := s.request(t, http.MethodGet, s.URL("/healthz"), nil, nil); a.status != http.StatusOK {
		t.Fatalf("unhealthy: /healthz answered %d", a.status)
	}
	n := s.healthN.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), healthDeadline)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.wsURL(""), &websocket.DialOptions{HTTPClient: s.ws})
	if err != nil {
		t.Fatalf("unhealthy: WebSocket dial: %v", err)
	}
	defer func() { _ = c.CloseNow() }()
	c.SetReadLimit(1 << 20)
	channel := fmt.Sprintf("room:health-%d", n)
	for id, cmd := range []string{
		command(1, "connect", map[string]string{"token": userToken(t, fmt.Sprintf("health-%d", n))}),
		command(2, "subscribe", map[string]string{"channel": channel}),
	} {
		if err := c.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
			t.Fatalf("unhealthy: write: %v", err)
		}
		if f := healthReply(t, ctx, c, uint32(id+1)); f.Error != nil {
			t.Fatalf("unhealthy: command %d answered %+v", id+1, f.Error)
		}
	}
	nonce := fmt.Sprintf("health-%d-%d", n, time.Now().UnixNano())
	if _, err := s.apiPublish(channel, map[string]string{"nonce": nonce}); err != nil {
		t.Fatalf("unhealthy: publish: %v", err)
	}
	for {
		frames, err := readFrames(ctx, c)
		if err != nil {
			t.Fatalf("unhealthy: no publication within %v: %v (close status %d)", healthDeadline, err, websocket.CloseStatus(err))
		}
		for _, f := range frames {
			if f.Type == "publication" && f.Channel == channel && strings.Contains(string(f.Data), nonce) {
				if d := time.Since(start); d > time.Second {
					t.Logf("health check took %v", d)
				}
				return
			}
		}
	}
}

func healthReply(t *testing.T, ctx context.Context, c *websocket.Conn, id uint32) wsFrame {
	t.Helper()
	for {
		frames, err := readFrames(ctx, c)
		if err != nil {
			t.Fatalf("unhealthy: no reply to command %d: %v (close status %d)", id, err, websocket.CloseStatus(err))
		}
		for _, f := range frames {
			if f.ID == id {
				return f
			}
		}
	}
}

// readVmStat returns a /proc/<pid>/status field in bytes (VmRSS, VmHWM).
func readVmStat(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				t.Fatalf("%s: %q: %v", field, line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
