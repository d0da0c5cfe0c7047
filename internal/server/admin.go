package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/api"
	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
	"github.com/heraldrt/herald/web"
)

// The admin UI watches the cluster through Herald itself: every node
// publishes a stats snapshot to AdminStatsChannel each adminStatsInterval,
// and the UI's connection, made with the admin session token, is
// subscribed to it server-side. The channel's namespace is a node reserved
// namespace: every client action in it is refused, user-limited channels
// included, and only credentials the admin verifier marks Reserved may
// name it. Admin powers thus come from admin.secret alone: an ordinary
// token whose sub is adminUser, or a channels claim naming the stats
// channel, gets nothing.
const (
	AdminNamespace     = "_admin"
	AdminStatsChannel  = AdminNamespace + ":stats"
	adminStatsInterval = time.Second
	// adminUser is the user id of admin UI connections; anyone may take it,
	// so nothing depends on it.
	adminUser = "herald-admin"
)

// AdminConfig enables the admin API (/admin/api/...) and the admin web UI
// (/admin/).
type AdminConfig struct {
	Enabled bool `koanf:"enabled"`
	// Password is what an admin logs in with.
	Password string `koanf:"password"`
	// Secret signs admin session tokens (HS256), at least 32 bytes.
	Secret string `koanf:"secret"`
}

func (c AdminConfig) validate(bad func(key, format string, args ...any), authSecret string) {
	if !c.Enabled {
		return
	}
	if len(c.Password) < 8 {
		bad("admin.password", "at least 8 characters are required when the admin is enabled")
	}
	if len(c.Secret) < api.MinAdminSecret {
		bad("admin.secret", "%d bytes is too short: at least %d are required when the admin is enabled", len(c.Secret), api.MinAdminSecret)
	}
	if c.Secret != "" && c.Secret == authSecret {
		bad("admin.secret", "must differ from auth.hmac_secret, or whoever can mint connection tokens can mint admin sessions")
	}
}

// withNamespace adds the reserved admin namespace to the configured ones,
// with the admin off too: listed explicitly, dev mode cannot open it.
func (c AdminConfig) withNamespace(list []node.NamespaceOptions) []node.NamespaceOptions {
	return append(slices.Clip(list), node.ReservedNamespace(AdminNamespace))
}

// validateNamespaceName refuses configured namespaces that take the admin's
// reserved name.
func validateNamespaceName(bad func(key, format string, args ...any), i int, name string) {
	if name == AdminNamespace {
		bad("namespaces", "namespaces[%d]: the namespace %q is reserved for the admin UI", i, name)
	}
}

// validatePersonalNamespace refuses personal channels in the admin's
// namespace, where no ordinary connection may be subscribed.
func validatePersonalNamespace(bad func(key, format string, args ...any), name string) {
	if name == AdminNamespace {
		bad("personal_namespace", "the namespace %q is reserved for the admin UI", name)
	}
}

// adminVerifier accepts admin session tokens as connection tokens, giving
// them the server-side subscription to the stats channel, and hands every
// other token to next (nil: no other token is accepted).
type adminVerifier struct {
	admin *api.AdminTokens
	next  node.TokenVerifier
}

var _ node.TokenVerifier = adminVerifier{}

func (v adminVerifier) VerifyConnection(ctx context.Context, token string) (node.Credentials, error) {
	session, err := v.admin.Verify(token)
	switch {
	case err == nil:
		return node.Credentials{UserID: adminUser, ExpiresAt: session.Expires, Channels: []string{AdminStatsChannel}, Reserved: true}, nil
	case !errors.Is(err, api.ErrNotAdminToken):
		return node.Credentials{}, err
	case v.next == nil:
		return node.Credentials{}, protocol.ErrUnauthorized.With("this server accepts no tokens but admin sessions: no keys configured")
	}
	return v.next.VerifyConnection(ctx, token)
}

func (v adminVerifier) VerifySubscription(ctx context.Context, token string) (node.SubscriptionGrant, error) {
	if v.next == nil {
		return node.SubscriptionGrant{}, protocol.ErrUnauthorized.With("this server accepts no subscription tokens: no keys configured")
	}
	return v.next.VerifySubscription(ctx, token)
}

// adminLive says whether key, an admin option, applies by reload: the
// password and the secret do while the admin stays enabled; admin.enabled
// needs a restart, as the UI's routes and stats are set up at startup.
func adminLive(key string, running, next *Config) bool {
	return (key == "admin.password" || key == "admin.secret") && running.Admin.Enabled && next.Admin.Enabled
}

// reloadAdmin applies next's admin password and secret, which Validate
// checked. A new secret ends every session signed with the old one.
func (s *Server) reloadAdmin(ctx context.Context, next *Config) {
	r := &s.reload
	if r.admin == nil || !next.Admin.Enabled {
		return
	}
	err := errors.Join(r.admin.SetPassword(next.Admin.Password), r.adminTokens.Rekey([]byte(next.Admin.Secret)))
	if err != nil {
		s.log.ErrorContext(ctx, "admin credentials not reloaded", "err", err)
	}
}

// adminTokens returns the admin session tokens when the admin is enabled,
// and the node's token verifier, which then takes admin sessions too so
// that the admin UI can connect.
func (s *Server) adminTokens(tokens node.TokenVerifier) (*api.AdminTokens, node.TokenVerifier, error) {
	if !s.cfg.Admin.Enabled {
		return nil, tokens, nil
	}
	a, err := api.NewAdminTokens([]byte(s.cfg.Admin.Secret), 0)
	if err != nil {
		return nil, nil, err
	}
	s.reload.adminTokens = a
	return a, adminVerifier{admin: a, next: tokens}, nil
}

// mountAdmin routes the admin API and UI; with the admin disabled /admin/
// answers 404 rather than fall through to the demo pages. clientIP names
// a request's caller for the login limits.
func (s *Server) mountAdmin(mux *http.ServeMux, tokens *api.AdminTokens, clientIP func(*http.Request) string, maxBody int64) error {
	if tokens == nil {
		mux.Handle("/admin/", http.NotFoundHandler())
		return nil
	}
	a, err := api.NewAdmin(api.AdminConfig{
		Node:         s.node,
		Password:     s.cfg.Admin.Password,
		Tokens:       tokens,
		ClientIP:     clientIP,
		Logger:       s.log.With("component", "admin"),
		MaxBodyBytes: maxBody,
	})
	if err != nil {
		return err
	}
	s.reload.admin = a
	mux.Handle(api.AdminLoginPath, a)
	mux.Handle(api.AdminRefreshPath, a)
	mux.Handle(api.AdminPrefix, a)
	mux.Handle("/admin/", web.AdminHandler())
	return nil
}

// adminQuiet keeps the admin's own traffic out of an event sink (the
// webhooks): the stats snapshots and the UI's subscriptions to them are no
// application's events.
type adminQuiet struct{ node.EventSink }

// quietAdmin wraps sink, when there is one, so that it never wants events
// on the admin namespace's channels.
func quietAdmin(sink node.EventSink) node.EventSink {
	if sink == nil {
		return nil
	}
	return adminQuiet{sink}
}

func (q adminQuiet) Wants(t node.EventType, channel string) bool {
	return protocol.Namespace(channel) != AdminNamespace && q.EventSink.Wants(t, channel)
}

// adminStats is one node's snapshot on AdminStatsChannel.
type adminStats struct {
	Node    string `json:"node"`
	Name    string `json:"name"`
	Version string `json:"version"`
	// Time is when the snapshot was taken, in Unix milliseconds.
	Time   int64 `json:"time"`
	Uptime int64 `json:"uptime_seconds"`
	// Connections counts this node's connections by transport.
	Connections   map[string]int `json:"connections"`
	Clients       int            `json:"num_clients"`
	Users         int            `json:"num_users"`
	Channels      int            `json:"num_channels"`
	Subscriptions int            `json:"num_subscriptions"`
	// Publications and Deliveries are counters since the node started:
	// publications accepted (not counting these snapshots) and copies
	// handed to local subscribers. The UI turns them into rates.
	Publications uint64 `json:"publications"`
	Deliveries   uint64 `json:"deliveries"`
	// Nodes is the cluster as this node sees it.
	Nodes []node.Info `json:"nodes"`
}

// startAdminStats publishes a snapshot every adminStatsInterval while the
// admin is enabled, until the returned function is called; that function
// waits for the publisher to stop.
func (s *Server) startAdminStats() (stop func()) {
	if !s.cfg.Admin.Enabled {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.runAdminStats(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

func (s *Server) runAdminStats(ctx context.Context) {
	t := time.NewTicker(adminStatsInterval)
	defer t.Stop()
	var own uint64 // snapshots published, left out of the publication count
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := json.Marshal(s.adminSnapshot(own))
		if err != nil {
			s.log.Error("admin stats: encoding a snapshot", "err", err)
			return
		}
		pubCtx, cancel := context.WithTimeout(ctx, adminStatsInterval)
		_, err = s.node.Publish(pubCtx, protocol.PublishRequest{Channel: AdminStatsChannel, Data: data, Ephemeral: true})
		cancel()
		if err == nil {
			own++
		} else if ctx.Err() == nil {
			s.log.Debug("admin stats: publish failed", "err", err)
		}
	}
}

func (s *Server) adminSnapshot(own uint64) adminStats {
	st := s.node.Stats()
	info := s.node.Info()
	return adminStats{
		Node:          info.ID,
		Name:          info.Name,
		Version:       info.Version,
		Time:          time.Now().UnixMilli(),
		Uptime:        info.Uptime,
		Connections:   st.Connections,
		Clients:       info.NumClients,
		Users:         info.NumUsers,
		Channels:      st.Channels,
		Subscriptions: st.Subscriptions,
		Publications:  st.Publications - min(own, st.Publications),
		Deliveries:    st.Deliveries,
		Nodes:         s.node.Nodes(),
	}
}
