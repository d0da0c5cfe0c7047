package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/api"
	"github.com/heraldrt/herald/internal/auth"
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
		"no password":        {func(c *Config) { c.Admin.Password = "" }, "admin.password"},
		"short secret":       {func(c *Config) { c.Admin.Secret = "short" }, "admin.secret"},
		"auth secret":        {func(c *Config) { c.Auth.HMACSecret = testAdminSecret }, "admin.secret"},
		"reserved":           {func(c *Config) { c.Namespaces = []node.NamespaceOptions{{Name: AdminNamespace}} }, "reserved"},
		"personal namespace": {func(c *Config) { c.PersonalNamespace = AdminNamespace }, "personal_namespace"},
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
	// Reserved with the admin off too, so that dev mode does not open it.
	cfg.Admin = AdminConfig{}
	if ns := cfg.namespaces(); len(ns) != 2 || ns[1].Name != AdminNamespace {
		t.Fatalf("namespaces with the admin off: %+v", ns)
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
	status, body, _ = r.doAuth(t, http.MethodPost, api.AdminPrefix+"nodes", "Bearer "+login.Token, `{}`)
	wantStatus(t, "admin API with the session", status, http.StatusOK, body)

	dial := func() *cws.Conn { return r.openWS(t, ctx, nil) }
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
		status, b, _ := a.doAuth(t, http.MethodPost, api.AdminPrefix+method, "Bearer "+login.Token, body)
		wantStatus(t, method, status, http.StatusOK, b)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %s: %v", method, b, err)
		}
	}
	dial := func(r *running, frames string) *cws.Conn {
		ws := r.openWS(t, ctx, nil)
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
	// Without a filter: the admin's connection and the two subscribers.
	var conns node.ConnectionsResult
	call("connections", `{}`, &conns)
	perNode := map[string]int{}
	for _, c := range conns.Connections {
		perNode[c.Node]++
	}
	if len(conns.Connections) != 3 || perNode[a.srv.node.ID()] != 2 || perNode[b.srv.node.ID()] != 1 || conns.Truncated || len(conns.Missing) != 0 {
		t.Fatalf("every connection across the cluster: %+v", conns)
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

// Admin powers come from admin.secret alone. A token signed with auth's key
// for the admin UI's user id connects as an ordinary client: it is not
// subscribed to the stats channel, cannot subscribe to the admin namespace
// (user-limited channels included), does not open the admin API and cannot
// renew an admin connection; a channels claim naming the stats channel is
// refused.
func TestAdminUserIDGrantsNothing(t *testing.T) {
	cfg := adminConfig()
	cfg.Dev = true
	cfg.Auth.HMACSecret = testSecret
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	impostor := mint(t, auth.MintOptions{UserID: adminUser, TTL: time.Hour})

	dial := func() *cws.Conn { return r.openWS(t, ctx, nil) }
	// Sends one command and returns its error code, nil for a success.
	call := func(ws *cws.Conn, id float64, cmd string) any {
		if err := ws.Write(ctx, cws.MessageText, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
		reply := wsRead(t, ctx, ws, func(m map[string]any) bool { return m["id"] == id })
		e, _ := reply["error"].(map[string]any)
		if e == nil {
			return nil
		}
		return e["code"]
	}
	subscribe := func(ch string) string {
		return `{"id":2,"method":"subscribe","params":{"channel":"` + ch + `"}}`
	}

	ws := dial()
	if code := call(ws, 1, `{"id":1,"method":"connect","params":{"token":"`+impostor+`"}}`); code != nil {
		t.Fatalf("connect with an ordinary token: error %v", code)
	}
	for _, ch := range []string{AdminStatsChannel, AdminStatsChannel + "#" + adminUser} {
		if code := call(ws, 2, subscribe(ch)); code != 103.0 {
			t.Fatalf("subscribe to %s: error %v, want 103", ch, code)
		}
	}
	if code := call(ws, 2, subscribe("chat:x")); code != nil {
		t.Fatalf("subscribe to chat:x: error %v", code)
	}
	var conns node.ConnectionsResult
	status, body, _ := r.do(t, http.MethodPost, "/api/connections", testKey, `{"user":"`+adminUser+`"}`)
	wantStatus(t, "connections", status, http.StatusOK, body)
	if err := json.Unmarshal(body, &conns); err != nil || len(conns.Connections) != 1 ||
		len(conns.Connections[0].Channels) != 1 || conns.Connections[0].Channels[0] != "chat:x" {
		t.Fatalf("the impostor's subscriptions: %s, %v", body, err)
	}

	claim := mint(t, auth.MintOptions{UserID: adminUser, TTL: time.Hour, Channels: []string{AdminStatsChannel}})
	if code := call(dial(), 1, `{"id":1,"method":"connect","params":{"token":"`+claim+`"}}`); code != 101.0 {
		t.Fatalf("connect with a channels claim naming the stats channel: error %v, want 101", code)
	}

	status, body, _ = r.doAuth(t, http.MethodPost, api.AdminPrefix+"nodes", "Bearer "+impostor, `{}`)
	wantStatus(t, "admin API with an ordinary token", status, http.StatusUnauthorized, body)
	status, body, _ = r.doAuth(t, http.MethodPost, api.AdminRefreshPath, "Bearer "+impostor, "")
	wantStatus(t, "admin refresh with an ordinary token", status, http.StatusUnauthorized, body)

	// The admin UI's own connection cannot be renewed past its session with
	// a token for the same user id.
	status, body, _ = r.do(t, http.MethodPost, api.AdminLoginPath, "", `{"password":"`+testAdminPassword+`"}`)
	wantStatus(t, "login", status, http.StatusOK, body)
	var login api.LoginResult
	if err := json.Unmarshal(body, &login); err != nil {
		t.Fatal(err)
	}
	admin := dial()
	if code := call(admin, 1, `{"id":1,"method":"connect","params":{"token":"`+login.Token+`"}}`); code != nil {
		t.Fatalf("admin connect: error %v", code)
	}
	if code := call(admin, 2, `{"id":2,"method":"refresh","params":{"token":"`+impostor+`"}}`); code != 101.0 {
		t.Fatalf("refreshing the admin connection with an ordinary token: error %v, want 101", code)
	}
}

// A reload applies a new admin password and secret at once: the old
// password no longer logs in and sessions signed with the old secret end.
// Turning the admin off needs a restart.
func TestAdminReload(t *testing.T) {
	cfg := adminConfig()
	cfg.LogFormat = "json" // as startReloadable runs it
	r := startReloadable(t, cfg)
	login := func(password string) (int, string) {
		t.Helper()
		status, body, _ := r.do(t, http.MethodPost, api.AdminLoginPath, "", `{"password":"`+password+`"}`)
		var res api.LoginResult
		_ = json.Unmarshal(body, &res)
		return status, res.Token
	}
	nodes := func(token string) int {
		t.Helper()
		status, _, _ := r.doAuth(t, http.MethodPost, api.AdminPrefix+"nodes", "Bearer "+token, `{}`)
		return status
	}
	status, before := login(testAdminPassword)
	wantStatus(t, "login before the reload", status, http.StatusOK, nil)

	next := cfg
	next.Admin.Password = "another-admin-password"
	next.Admin.Secret = strings.Repeat("s", 40)
	r.set(next, nil)
	if err := r.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if status, _ := login(testAdminPassword); status != http.StatusUnauthorized {
		t.Fatalf("the old password after the reload: %d", status)
	}
	if status := nodes(before); status != http.StatusUnauthorized {
		t.Fatalf("a session of the old secret after the reload: %d", status)
	}
	status, after := login(next.Admin.Password)
	wantStatus(t, "login with the new password", status, http.StatusOK, nil)
	wantStatus(t, "a session of the new secret", nodes(after), http.StatusOK, nil)
	reloaded := logLines(t, r.logs, "configuration reloaded")
	if len(reloaded) != 1 || fmt.Sprint(reloaded[0]["changed"]) != "[admin.password admin.secret]" {
		t.Fatalf("reload log %v", reloaded)
	}
	if restart := logLines(t, r.logs, "configuration changed, needs restart"); len(restart) != 0 {
		t.Fatalf("needs restart: %v", restart)
	}

	off := next
	off.Admin = AdminConfig{}
	r.set(off, nil)
	if err := r.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	restart := logLines(t, r.logs, "configuration changed, needs restart")
	if len(restart) != 1 || !strings.Contains(fmt.Sprint(restart[0]["options"]), "admin.enabled") {
		t.Fatalf("turning the admin off: %v", restart)
	}
	wantStatus(t, "the admin until the restart", nodes(after), http.StatusOK, nil)
}
