package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/api"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/internal/testkit"
)

const (
	testAdminPassword = "admin-password"
	testAdminSecret   = "admin-secret-admin-secret-admin-secret"
)

func adminConfig() Config {
	cfg := testConfig()
	cfg.Admin = AdminConfig{Enabled: true, Password: testAdminPassword, Secret: testAdminSecret}
	return cfg
}

func TestAdminDisabledAnswers404(t *testing.T) {
	r := start(t, testConfig())
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/admin/"},
		{http.MethodGet, "/admin/admin.js"},
		{http.MethodPost, api.AdminLoginPath},
		{http.MethodPost, api.AdminPrefix + "nodes"},
	} {
		status, body, _ := r.do(t, c.method, c.path, "", `{"password":"x"}`)
		wantStatus(t, c.method+" "+c.path, status, http.StatusNotFound, body)
	}
}

func TestAdminConfigValidation(t *testing.T) {
	for name, c := range map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"no password":  {func(c *Config) { c.Admin.Password = "" }, "admin.password"},
		"short secret": {func(c *Config) { c.Admin.Secret = "short" }, "admin.secret"},
		"auth secret":  {func(c *Config) { c.Auth.HMACSecret = testAdminSecret }, "admin.secret"},
		"reserved":     {func(c *Config) { c.Namespaces = []node.NamespaceOptions{{Name: AdminNamespace}} }, "reserved"},
		"reserved, admin off": {func(c *Config) {
			c.Admin = AdminConfig{}
			c.Namespaces = []node.NamespaceOptions{{Name: AdminNamespace}}
		}, "reserved"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := adminConfig()
			c.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want an error naming %s", err, c.want)
			}
		})
	}
	cfg := adminConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if ns := cfg.namespaces(); len(ns) != 2 || ns[1].Name != AdminNamespace || ns[1].Subscribe != "" || ns[1].HistorySize != 0 {
		t.Fatalf("namespaces with the admin on: %+v", ns)
	}
}

// The admin UI's connection, made with the admin session token, receives
// every node's stats each second through the reserved channel, which no
// other client may subscribe to, even in dev mode.
func TestAdminLiveStats(t *testing.T) {
	cfg := adminConfig()
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	status, body, _ := r.do(t, http.MethodGet, "/admin/", "", "")
	wantStatus(t, "admin page", status, http.StatusOK, body)
	if !strings.Contains(string(body), "Herald admin") || !strings.Contains(string(body), "/sdk/herald.min.js") {
		t.Fatalf("admin page %s", body)
	}
	status, body, _ = r.do(t, http.MethodGet, "/admin/admin.js", "", "")
	wantStatus(t, "admin script", status, http.StatusOK, body)

	status, body, _ = r.do(t, http.MethodPost, api.AdminLoginPath, "", `{"password":"wrong"}`)
	wantStatus(t, "wrong password", status, http.StatusUnauthorized, body)
	status, body, _ = r.do(t, http.MethodPost, api.AdminLoginPath, "", `{"password":"`+testAdminPassword+`"}`)
	wantStatus(t, "login", status, http.StatusOK, body)
	var login api.LoginResult
	if err := json.Unmarshal(body, &login); err != nil || login.Token == "" {
		t.Fatalf("login %s: %v", body, err)
	}
	// The server API key does not open the admin API, nor the reverse.
	status, body, _ = r.do(t, http.MethodPost, api.AdminPrefix+"nodes", testKey, `{}`)
	wantStatus(t, "admin API with the API key", status, http.StatusUnauthorized, body)
	req, _ := http.NewRequest(http.MethodPost, r.url+api.AdminPrefix+"nodes", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+login.Token)
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	wantStatus(t, "admin API with the session", res.StatusCode, http.StatusOK, nil)

	dial := func() *cws.Conn {
		ws, _, err := cws.Dial(ctx, "ws"+strings.TrimPrefix(r.url, "http")+"/ws", &cws.DialOptions{HTTPClient: r.client})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		return ws
	}
	// An anonymous client is refused the stats channel.
	other := dial()
	if err := other.Write(ctx, cws.MessageText, []byte(`{"id":1,"method":"connect","params":{}}`+"\n"+
		`{"id":2,"method":"subscribe","params":{"channel":"`+AdminStatsChannel+`"}}`)); err != nil {
		t.Fatal(err)
	}
	reply := wsRead(t, ctx, other, func(m map[string]any) bool { return m["id"] == 2.0 })
	if e, _ := reply["error"].(map[string]any); e == nil || e["code"] != 103.0 {
		t.Fatalf("anonymous subscribe to the stats channel: %v, want error 103", reply)
	}

	admin := dial()
	if err := admin.Write(ctx, cws.MessageText, []byte(`{"id":1,"method":"connect","params":{"token":"`+login.Token+`"}}`)); err != nil {
		t.Fatal(err)
	}
	reply = wsRead(t, ctx, admin, func(m map[string]any) bool { return m["id"] == 1.0 })
	if reply["error"] != nil {
		t.Fatalf("admin connect: %v", reply)
	}
	snapshot := func() adminStats {
		t.Helper()
		pub := wsRead(t, ctx, admin, func(m map[string]any) bool { return m["type"] == "publication" && m["channel"] == AdminStatsChannel })
		b, _ := json.Marshal(pub["data"])
		var s adminStats
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("snapshot %s: %v", b, err)
		}
		return s
	}
	first := snapshot()
	if first.Node != r.srv.node.ID() || first.Connections["websocket"] != 2 || first.Clients != 2 || len(first.Nodes) != 1 {
		t.Fatalf("first snapshot %+v", first)
	}
	if first.Publications != 0 {
		t.Fatalf("the snapshots count themselves as publications: %+v", first)
	}
	status, body, _ = r.do(t, http.MethodPost, "/api/publish", testKey, `{"channel":"chat:x","data":1}`)
	wantStatus(t, "publish", status, http.StatusOK, body)
	for {
		s := snapshot()
		if s.Time <= first.Time {
			t.Fatalf("snapshot time went from %d to %d", first.Time, s.Time)
		}
		if s.Publications == 1 {
			break
		}
		if s.Publications != 0 {
			t.Fatalf("snapshot after one publish: %+v", s)
		}
	}
}

// fakeTokens is a node.TokenVerifier that accepts one connection token.
type fakeTokens struct{ token string }

func (f fakeTokens) VerifyConnection(_ context.Context, token string) (node.Credentials, error) {
	if token != f.token {
		return node.Credentials{}, protocol.ErrUnauthorized.With("bad token")
	}
	return node.Credentials{UserID: "alice"}, nil
}

func (f fakeTokens) VerifySubscription(context.Context, string) (node.SubscriptionGrant, error) {
	return node.SubscriptionGrant{UserID: "alice", Channel: "x"}, nil
}

func TestAdminVerifier(t *testing.T) {
	tokens, err := api.NewAdminTokens([]byte(testAdminSecret), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srv := httptest.NewServer(mustAdmin(t, tokens))
	defer srv.Close()
	res, err := http.Post(srv.URL+api.AdminLoginPath, "application/json", strings.NewReader(`{"password":"`+testAdminPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login api.LoginResult
	if err := json.NewDecoder(res.Body).Decode(&login); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	v := adminVerifier{admin: tokens, next: fakeTokens{token: "alice-token"}}
	cred, err := v.VerifyConnection(ctx, login.Token)
	if err != nil || cred.UserID != adminUser || len(cred.Channels) != 1 || cred.Channels[0] != AdminStatsChannel || cred.ExpiresAt.IsZero() {
		t.Fatalf("admin token: %+v, %v", cred, err)
	}
	if cred, err := v.VerifyConnection(ctx, "alice-token"); err != nil || cred.UserID != "alice" {
		t.Fatalf("another token goes to the next verifier: %+v, %v", cred, err)
	}
	if _, err := v.VerifyConnection(ctx, "bad"); protocol.AsError(err).Code != protocol.ErrUnauthorized.Code {
		t.Fatalf("a bad token: %v", err)
	}
	if g, err := v.VerifySubscription(ctx, "any"); err != nil || g.UserID != "alice" {
		t.Fatalf("subscription tokens go to the next verifier: %+v, %v", g, err)
	}
	alone := adminVerifier{admin: tokens}
	if _, err := alone.VerifyConnection(ctx, "alice-token"); protocol.AsError(err).Code != protocol.ErrUnauthorized.Code {
		t.Fatalf("no other verifier: %v", err)
	}
	if _, err := alone.VerifySubscription(ctx, "any"); protocol.AsError(err).Code != protocol.ErrUnauthorized.Code {
		t.Fatalf("no other verifier, subscription: %v", err)
	}
}

func mustAdmin(t *testing.T, tokens *api.AdminTokens) *api.Admin {
	t.Helper()
	a, err := api.NewAdmin(api.AdminConfig{Password: testAdminPassword, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Two nodes on one Redis: the admin UI's connection on one node hears both
// nodes' stats, the channels method sums both nodes' subscribers, and an
// unsubscribe sent to one node reaches a client on the other.
func TestAdminAcrossRedisCluster(t *testing.T) {
	url, _ := testkit.StartRedis(t)
	var nodes []*running
	for range 2 {
		cfg := adminConfig()
		cfg.Dev = true
		cfg.Engine, cfg.RedisURL, cfg.EnginePrefix = EngineRedis, url, "admin"
		cfg.NodeHeartbeat = 100 * time.Millisecond
		nodes = append(nodes, start(t, cfg))
	}
	a, b := nodes[0], nodes[1]
	testkit.WaitFor(t, 10*time.Second, "the nodes to see each other", func() bool {
		return len(a.srv.node.Nodes()) == 2 && len(b.srv.node.Nodes()) == 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	status, body, _ := a.do(t, http.MethodPost, api.AdminLoginPath, "", `{"password":"`+testAdminPassword+`"}`)
	wantStatus(t, "login", status, http.StatusOK, body)
	var login api.LoginResult
	if err := json.Unmarshal(body, &login); err != nil {
		t.Fatal(err)
	}
	call := func(method, body string, out any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, a.url+api.AdminPrefix+method, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+login.Token)
		res, err := a.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		wantStatus(t, method, res.StatusCode, http.StatusOK, b)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %s: %v", method, b, err)
		}
	}
	dial := func(r *running, frames string) *cws.Conn {
		ws, _, err := cws.Dial(ctx, "ws"+strings.TrimPrefix(r.url, "http")+"/ws", &cws.DialOptions{HTTPClient: r.client})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		if err := ws.Write(ctx, cws.MessageText, []byte(frames)); err != nil {
			t.Fatal(err)
		}
		return ws
	}

	admin := dial(a, `{"id":1,"method":"connect","params":{"token":"`+login.Token+`"}}`)
	heard := map[string]bool{}
	for len(heard) < 2 {
		pub := wsRead(t, ctx, admin, func(m map[string]any) bool { return m["type"] == "publication" && m["channel"] == AdminStatsChannel })
		data, _ := pub["data"].(map[string]any)
		id, _ := data["node"].(string)
		heard[id] = true
	}
	if !heard[a.srv.node.ID()] || !heard[b.srv.node.ID()] {
		t.Fatalf("stats heard from %v", heard)
	}

	subscribe := `{"id":1,"method":"connect","params":{}}` + "\n" + `{"id":2,"method":"subscribe","params":{"channel":"chat:x"}}`
	onB := dial(b, subscribe)
	connected := wsRead(t, ctx, onB, func(m map[string]any) bool { return m["id"] == 1.0 })
	result, _ := connected["result"].(map[string]any)
	clientOnB, _ := result["client"].(string)
	wsRead(t, ctx, onB, func(m map[string]any) bool { return m["id"] == 2.0 })
	onA := dial(a, subscribe)
	wsRead(t, ctx, onA, func(m map[string]any) bool { return m["id"] == 2.0 })

	var channels node.ClusterChannelsResult
	call("channels", `{"pattern":"chat:*"}`, &channels)
	if c := channels.Channels["chat:x"]; c.NumSubscribers != 2 || c.NumNodes != 2 || len(channels.Missing) != 0 {
		t.Fatalf("channels across the cluster: %+v", channels)
	}

	call("unsubscribe", `{"client":"`+clientOnB+`","channel":"chat:x"}`, &struct{}{})
	push := wsRead(t, ctx, onB, func(m map[string]any) bool { return m["type"] == "unsubscribe" })
	if push["channel"] != "chat:x" || push["code"] != 103.0 {
		t.Fatalf("unsubscribe push on the other node: %v", push)
	}
	testkit.WaitFor(t, 10*time.Second, "the subscriber on b gone", func() bool {
		call("channels", `{"pattern":"chat:*"}`, &channels)
		c := channels.Channels["chat:x"]
		return c.NumSubscribers == 1 && c.NumNodes == 1
	})
}

type wantAll struct{ emitted []node.Event }

func (w *wantAll) Wants(node.EventType, string) bool { return true }
func (w *wantAll) Emit(ev node.Event)                { w.emitted = append(w.emitted, ev) }

func TestQuietAdmin(t *testing.T) {
	if quietAdmin(nil) != nil {
		t.Fatal("no sink became one")
	}
	q := quietAdmin(&wantAll{})
	if q.Wants(node.EventPublish, AdminStatsChannel) || q.Wants(node.EventSubscribe, AdminStatsChannel) {
		t.Error("the sink is handed the admin's own events")
	}
	if !q.Wants(node.EventPublish, "chat:x") || !q.Wants(node.EventConnect, "") {
		t.Error("the sink lost other events")
	}
}
