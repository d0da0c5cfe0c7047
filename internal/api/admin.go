package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/node"
	"github.com/heraldrt/herald/internal/protocol"
)

// Paths of the admin API: a password login that returns a session token,
// and the methods that take it.
const (
	AdminLoginPath   = "/admin/login"
	AdminRefreshPath = "/admin/refresh"
	AdminPrefix      = "/admin/api/"
)

// AdminConfig configures the admin API.
type AdminConfig struct {
	Node *node.Node
	// Password is what POST AdminLoginPath must be given.
	Password string
	// Tokens mints the session tokens a login answers and checks those
	// the methods are called with.
	Tokens *AdminTokens
	// ClientIP names the caller of a request, for bounding login attempts
	// per address; nil uses the connection's remote address.
	ClientIP func(*http.Request) string
	Logger   *slog.Logger
	// MaxBodyBytes bounds a request body; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Admin serves the admin API: POST AdminLoginPath {"password"} answers
// {"token", "expires_in"}, and every method under AdminPrefix is a POST
// with "Authorization: Bearer <token>" and a JSON body, answered like the
// server API's. The server API key does not open it.
type Admin struct {
	node         *node.Node
	api          *Handler
	tokens       *AdminTokens
	passwordHash atomic.Pointer[[sha256.Size]byte]
	logins       *loginLimiter
	clientIP     func(*http.Request) string
	log          *slog.Logger
	now          func() time.Time
	routes       map[string]http.HandlerFunc
}

// NewAdmin returns the admin API handler; it refuses a config without a
// password or tokens.
func NewAdmin(cfg AdminConfig) (*Admin, error) {
	if cfg.Tokens == nil {
		return nil, fmt.Errorf("admin: no session tokens configured")
	}
	a := &Admin{
		node:     cfg.Node,
		tokens:   cfg.Tokens,
		logins:   newLoginLimiter(),
		clientIP: cfg.ClientIP,
		log:      cfg.Logger,
		now:      cfg.Now,
	}
	if err := a.SetPassword(cfg.Password); err != nil {
		return nil, err
	}
	if a.clientIP == nil {
		a.clientIP = remoteIP
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	maxBody := cfg.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	// The server API's endpoints, reached through the admin credential.
	a.api = &Handler{node: cfg.Node, log: a.log, maxBody: maxBody}
	a.routes = map[string]http.HandlerFunc{
		"nodes":          serve(maxBody, a.api.info),
		"connections":    serve(maxBody, a.connections),
		"channels":       serve(maxBody, a.channels),
		"presence":       serve(maxBody, a.api.presence),
		"presence_stats": serve(maxBody, a.api.presenceStats),
		"history":        serve(maxBody, a.api.history),
		"disconnect":     serve(maxBody, a.api.disconnect),
		"unsubscribe":    serve(maxBody, a.unsubscribe),
		"publish":        serve(maxBody, a.api.publish),
	}
	return a, nil
}

// SetPassword makes password the one a login must give from now on;
// sessions already open go on.
func (a *Admin) SetPassword(password string) error {
	if password == "" {
		return fmt.Errorf("admin: a password is required")
	}
	h := sha256.Sum256([]byte(password))
	a.passwordHash.Store(&h)
	return nil
}

// ServeHTTP serves AdminLoginPath, AdminRefreshPath and the methods under
// AdminPrefix.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == AdminLoginPath {
		if requirePost(w, r) {
			a.login(w, r)
		}
		return
	}
	session, err := a.authorize(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald-admin"`)
		protocol.WriteHTTPError(w, err)
		return
	}
	if r.URL.Path == AdminRefreshPath {
		if !requirePost(w, r) {
			return
		}
		if a.now().Sub(session.Login) > MaxAdminSession {
			protocol.WriteHTTPError(w, protocol.ErrTokenExpired.With("admin session started more than %v ago: log in again", MaxAdminSession))
			return
		}
		a.issue(w, session.Login)
		return
	}
	route, ok := a.routes[strings.TrimPrefix(r.URL.Path, AdminPrefix)]
	if !ok {
		protocol.WriteHTTPError(w, protocol.ErrMethodNotFound.With("no admin API endpoint %q", truncate(r.URL.Path, 64)))
		return
	}
	if requirePost(w, r) {
		route(w, r)
	}
}

func (a *Admin) authorize(r *http.Request) (AdminSession, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return AdminSession{}, protocol.ErrUnauthorized.With(`missing "Authorization: Bearer <admin session token>" header; POST %s to get one`, AdminLoginPath)
	}
	session, err := a.tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		if pe := protocol.AsError(err); pe.Code == protocol.ErrTokenExpired.Code {
			return AdminSession{}, pe
		}
		return AdminSession{}, protocol.ErrUnauthorized.With("invalid admin session token")
	}
	return session, nil
}

// loginRequest is the body of a login.
type loginRequest struct {
	Password string `json:"password"`
}

// LoginResult is a login's answer: a session token for the admin API and
// the admin UI's connection, and its lifetime in seconds.
type LoginResult struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"`
}

// login checks the password, bounded per address by the login limiter so
// that it cannot be guessed at speed.
func (a *Admin) login(w http.ResponseWriter, r *http.Request) {
	ip := a.clientIP(r)
	if wait, ok := a.logins.allow(ip, a.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		protocol.WriteHTTPError(w, protocol.ErrTooManyRequests.With("too many login attempts; retry in %v", wait.Round(time.Second)))
		return
	}
	var req loginRequest
	if err := decodeBody(w, r, 4<<10, &req); err != nil {
		protocol.WriteHTTPError(w, err)
		return
	}
	got := sha256.Sum256([]byte(req.Password))
	if subtle.ConstantTimeCompare(got[:], a.passwordHash.Load()[:]) != 1 {
		a.log.Warn("admin login refused: wrong password", "ip", ip)
		protocol.WriteHTTPError(w, protocol.ErrUnauthorized.With("wrong password"))
		return
	}
	a.log.Info("admin logged in", "ip", ip)
	a.issue(w, a.now())
}

// issue answers a fresh session token for the session that logged in at
// login: at the login itself, or renewing a valid token before it expires,
// so that an open UI keeps working (up to MaxAdminSession).
func (a *Admin) issue(w http.ResponseWriter, login time.Time) {
	token, err := a.tokens.mint(a.now(), login)
	if err != nil {
		a.log.Error("admin session token not minted", "err", err)
		protocol.WriteHTTPError(w, protocol.ErrInternal)
		return
	}
	writeJSON(w, LoginResult{Token: token, ExpiresIn: int(a.tokens.ttl.Seconds())})
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// channels lists the channels with subscribers on any node, with counts
// summed over the cluster.
func (a *Admin) channels(ctx context.Context, req *ChannelsRequest) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, surveyTimeout)
	defer cancel()
	return a.node.ClusterChannels(ctx, req.Pattern)
}

// connections lists connections across the cluster. Unlike the server
// API's, it takes an empty filter, listing every connection: the admin UI
// browses them. Each node lists a bounded number, saying when it had more.
func (a *Admin) connections(ctx context.Context, req *ConnectionsRequest) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, surveyTimeout)
	defer cancel()
	return a.node.ClusterConnections(ctx, node.ConnectionFilter{User: req.User, Client: req.Client, Channel: req.Channel})
}

// UnsubscribeRequest ends the subscriptions to Channel of a user's
// connections, or of one client's, on every node.
type UnsubscribeRequest struct {
	User    string `json:"user,omitempty"`
	Client  string `json:"client,omitempty"`
	Channel string `json:"channel"`
}

func (a *Admin) unsubscribe(ctx context.Context, req *UnsubscribeRequest) (any, error) {
	if err := a.node.Unsubscribe(ctx, node.ConnectionFilter{User: req.User, Client: req.Client}, req.Channel); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
