package server

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/testkit"
)

// reloadable is a server whose Loader returns what the test last set.
type reloadable struct {
	*running
	logs *testkit.LockedBuffer
	mu   sync.Mutex
	next Config
	err  error
}

func (r *reloadable) set(cfg Config, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next, r.err = cfg, err
}

func startReloadable(t *testing.T, cfg Config) *reloadable {
	t.Helper()
	r := &reloadable{logs: &testkit.LockedBuffer{}, next: cfg}
	cfg.Logger = nil
	cfg.LogFormat = "json"
	cfg.Logger = cfg.NewLogger(r.logs)
	cfg.Loader = func() (Config, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.next, r.err
	}
	r.next.LogFormat = "json"
	r.running = start(t, cfg)
	return r
}

// logLines decodes the JSON log lines whose message is msg.
func logLines(t *testing.T, logs *testkit.LockedBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func reloadConfig() Config {
	cfg := testConfig()
	cfg.Namespaces = []node.NamespaceOptions{{Name: "old", HistorySize: 10, HistoryTTL: time.Hour}}
	return cfg
}

func TestReloadAppliesLiveOptions(t *testing.T) {
	cfg := reloadConfig()
	r := startReloadable(t, cfg)
	ctx := context.Background()

	next := cfg
	next.APIKey = "new-key"
	next.Namespaces = []node.NamespaceOptions{{Name: "new", HistorySize: 10, HistoryTTL: time.Hour}}
	next.MaxPublicationSize = 16
	next.LogLevel = "debug"
	next.PingInterval = 20 * time.Second // needs a restart
	r.set(next, nil)
	if err := r.srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}

	status, body, _ := r.do(t, http.MethodPost, "/api/publish", testKey, `{"channel":"new:a","data":1}`)
	wantStatus(t, "publish with the old key", status, http.StatusUnauthorized, body)
	status, body, _ = r.do(t, http.MethodPost, "/api/publish", "new-key", `{"channel":"new:a","data":1}`)
	wantStatus(t, "publish to the added namespace", status, http.StatusOK, body)
	status, body, _ = r.do(t, http.MethodPost, "/api/publish", "new-key", `{"channel":"old:a","data":1}`)
	wantStatus(t, "publish to the removed namespace", status, http.StatusNotFound, body)
	status, body, _ = r.do(t, http.MethodPost, "/api/publish", "new-key", `{"channel":"new:a","data":"more than sixteen bytes"}`)
	wantStatus(t, "publish over the reloaded size limit", status, http.StatusRequestEntityTooLarge, body)
	if lv := r.srv.cfg.LogLevelVar.Level(); lv != slog.LevelDebug {
		t.Fatalf("log level after reload: %v", lv)
	}

	done := logLines(t, r.logs, "configuration reloaded")
	if len(done) != 1 {
		t.Fatalf("reload logged %d success lines", len(done))
	}
	changed, _ := json.Marshal(done[0]["changed"])
	for _, k := range []string{"api_key", "namespaces", "max_publication_size", "log_level"} {
		if !strings.Contains(string(changed), `"`+k+`"`) {
			t.Errorf("changed %s lacks %s", changed, k)
		}
	}
	restart := logLines(t, r.logs, "configuration changed, needs restart")
	if len(restart) != 1 || !strings.Contains(logValue(restart[0]["options"]), "ping_interval") {
		t.Fatalf("restart warning: %v", restart)
	}
}

func logValue(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestReloadRefusesBadConfigEntirely(t *testing.T) {
	cfg := reloadConfig()
	r := startReloadable(t, cfg)
	ctx := context.Background()

	bad := cfg
	bad.APIKey = "new-key"
	bad.MaxPublicationSize = -1 // invalid: the whole file is refused
	r.set(bad, nil)
	if err := r.srv.Reload(ctx); err == nil {
		t.Fatal("invalid configuration reloaded")
	}
	r.set(Config{}, errors.New("config file herald.yaml: unknown option \"typo\""))
	if err := r.srv.Reload(ctx); err == nil {
		t.Fatal("a configuration that does not load was reloaded")
	}
	status, body, _ := r.do(t, http.MethodPost, "/api/publish", testKey, `{"channel":"old:a","data":1}`)
	wantStatus(t, "publish with the running key after refused reloads", status, http.StatusOK, body)
	if n := len(logLines(t, r.logs, "configuration not reloaded, keeping the running one")); n != 2 {
		t.Fatalf("%d refusal log lines, want 2", n)
	}
}

func TestReloadSwapsTokenKeys(t *testing.T) {
	oldSecret, newSecret := strings.Repeat("o", 32), strings.Repeat("n", 32)
	cfg := reloadConfig()
	cfg.Auth.HMACSecret = oldSecret
	cfg.Namespaces[0].Publish = node.AccessAuthenticated
	r := startReloadable(t, cfg)

	publishAs := func(secret string) int {
		tok, err := auth.Mint(auth.MintOptions{Secret: []byte(secret), UserID: "u", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return publishWithToken(t, r.running, tok)
	}
	if s := publishAs(oldSecret); s != http.StatusOK {
		t.Fatalf("old token before reload: %d", s)
	}
	next := cfg
	next.Auth.HMACSecret = newSecret
	r.set(next, nil)
	if err := r.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := publishAs(oldSecret); s != http.StatusUnauthorized {
		t.Fatalf("old token after reload: %d, want 401", s)
	}
	if s := publishAs(newSecret); s != http.StatusOK {
		t.Fatalf("new token after reload: %d", s)
	}
}

func TestReloadWithoutLoader(t *testing.T) {
	r := start(t, testConfig())
	if err := r.srv.Reload(context.Background()); !errors.Is(err, ErrNoLoader) {
		t.Fatalf("Reload without a loader: %v", err)
	}
}

func TestReloadAfterStopIsRefused(t *testing.T) {
	cfg := reloadConfig()
	r := startReloadable(t, cfg)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Reload(context.Background()); err == nil {
		t.Fatal("a stopped server reloaded")
	}
}

// Rotating a public key usually replaces the key file's content under the
// same name: a reload must read it again.
func TestReloadRereadsThePublicKeyFile(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	newKey := func() ed25519.PrivateKey {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return priv
	}
	first := newKey()
	cfg := reloadConfig()
	cfg.Auth.PublicKeyFile = keyFile
	cfg.Namespaces[0].Publish = node.AccessAuthenticated
	r := startReloadable(t, cfg)
	publishAs := func(key ed25519.PrivateKey) int {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return publishWithToken(t, r.running, tok)
	}
	if s := publishAs(first); s != http.StatusOK {
		t.Fatalf("first key before rotation: %d", s)
	}
	second := newKey()
	if err := r.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := publishAs(first); s != http.StatusUnauthorized {
		t.Fatalf("first key after rotation: %d, want 401", s)
	}
	if s := publishAs(second); s != http.StatusOK {
		t.Fatalf("second key after rotation: %d", s)
	}
}

func TestReloadChangesOriginsAndConnectionRate(t *testing.T) {
	cfg := reloadConfig()
	cfg.Namespaces[0].Subscribe = node.AccessAnyone
	cfg.AllowAnonymous = true
	cfg.ConnectionRate = 0
	r := startReloadable(t, cfg)
	stream := func(origin string) int {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/sse?channel=old:a", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		res.Body.Close()
		return res.StatusCode
	}
	const page = "https://app.example"
	if s := stream(page); s != http.StatusForbidden {
		t.Fatalf("stream from %s before reload: %d, want 403", page, s)
	}
	next := cfg
	next.AllowedOrigins = []string{page}
	next.ConnectionRate, next.ConnectionBurst = 0.001, 2
	r.set(next, nil)
	if err := r.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if s := stream(page); s != http.StatusOK {
			t.Fatalf("stream %d from %s after reload: %d", i, page, s)
		}
	}
	if s := stream(""); s != http.StatusTooManyRequests {
		t.Fatalf("stream beyond the reloaded connection burst: %d, want 429", s)
	}
}

// publishWithToken publishes to old:a through the client HTTP API with tok,
// returning the status.
func publishWithToken(t *testing.T, r *running, tok string) int {
	t.Helper()
	status, _, _ := r.doAuth(t, http.MethodPost, "/publish", "Bearer "+tok, `{"channel":"old:a","data":1}`)
	return status
}
