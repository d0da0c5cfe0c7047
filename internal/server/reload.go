package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/internal/api"
	"github.com/heraldrt/herald/internal/auth"
	"github.com/heraldrt/herald/internal/node"
)

// liveKeys are the options Reload applies to a running server; a change to
// any other option is logged as needing a restart and left alone. A key
// ending in "." stands for its whole section.
var liveKeys = []string{
	"log_level",
	"namespaces",
	"max_channels_per_connection",
	"max_publication_size",
	"max_recovered_publications",
	"max_history_limit",
	"max_connections_per_user",
	"command_rate",
	"command_burst",
	"connection_rate",
	"connection_burst",
	"api_key",
	"allowed_origins",
	"auth.",
}

func isLive(key string) bool {
	for _, k := range liveKeys {
		if key == k || strings.HasSuffix(k, ".") && strings.HasPrefix(key, k) {
			return true
		}
	}
	return false
}

// ErrNoLoader is Reload's error for a server whose Config has no Loader.
var ErrNoLoader = errors.New("server: reload: no configuration loader (Config.Loader)")

// reloadState is what Reload swaps in a running server. Request paths read
// it through atomic pointers; mu serializes reloads.
type reloadState struct {
	mu sync.Mutex
	// applied is the configuration of the last successful reload (or New),
	// guarded by mu, against which the next reload reports what changed.
	applied Config
	// stopAuth ends the JWKS refresh of the verifier in use; stopped says
	// the server stopped it for good, after which reloads are refused. Both
	// guarded by mu.
	stopAuth context.CancelFunc
	stopped  bool
	// verifier checks tokens; nil when no key is configured.
	verifier atomic.Pointer[auth.Verifier]
	origin   atomic.Pointer[func(*http.Request) bool]
	api      *api.Handler
	gate     *gate
	// admin and adminTokens take a new admin.password and admin.secret;
	// nil with the admin off.
	admin       *api.Admin
	adminTokens *api.AdminTokens
}

// initReload records the configuration and verifier New started with. From
// then on s.stopAuth stops whichever verifier is in use.
func (s *Server) initReload(verifier *auth.Verifier) {
	r := &s.reload
	r.applied = s.cfg
	r.stopAuth = s.stopAuth
	s.stopAuth = s.stopCurrentAuth
	if s.cfg.Auth.Enabled() {
		r.verifier.Store(verifier)
	}
	check := originChecker(s.cfg.Dev, s.cfg.AllowedOrigins)
	r.origin.Store(&check)
}

func (s *Server) stopCurrentAuth() {
	s.reload.mu.Lock()
	defer s.reload.mu.Unlock()
	s.reload.stopAuth()
	s.reload.stopped = true
}

// checkOrigin applies the allowed_origins in force.
func (s *Server) checkOrigin(r *http.Request) bool { return (*s.reload.origin.Load())(r) }

// Reload reads the configuration again through Config.Loader and applies
// what can change while the server runs: log_level, namespaces, the limits,
// connection_rate and connection_burst, api_key, allowed_origins, the
// auth section, and the admin password and secret. Changes to other
// options are logged as needing a restart and otherwise ignored. A
// configuration that does not load or validate, or whose auth keys cannot
// be used, is refused entirely: the error is logged and returned, and the
// server keeps running as it was.
func (s *Server) Reload(ctx context.Context) error {
	if s.cfg.Loader == nil {
		return ErrNoLoader
	}
	next, err := s.cfg.Loader()
	if err != nil {
		err = fmt.Errorf("server: reload: %w", err)
		s.log.ErrorContext(ctx, "configuration not reloaded, keeping the running one", "err", err)
		return err
	}
	return s.apply(ctx, next)
}

// apply makes next the running configuration as far as it can change live.
// Everything that can fail is done before anything is swapped.
func (s *Server) apply(ctx context.Context, next Config) error {
	r := &s.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	refuse := func(err error) error {
		err = fmt.Errorf("server: reload: %w", err)
		s.log.ErrorContext(ctx, "configuration not reloaded, keeping the running one", "err", err)
		return err
	}
	if r.stopped {
		// A verifier built now would refresh its JWKS after the server is gone.
		return refuse(errors.New("the server has stopped"))
	}
	if err := next.Validate(); err != nil {
		return refuse(err)
	}
	if next.Name == "" {
		next.Name, _ = os.Hostname() // as New does
	}
	if next.Dev && !next.Auth.Enabled() {
		// Keep dev mode's generated secret, or every token minted with it
		// (the demo page's) stops working.
		next.Auth.HMACSecret = r.applied.Auth.HMACSecret
	}
	if next.Dev != s.cfg.Dev {
		// Dev mode decides defaults of other live options (namespaces, the
		// API's openness); mixing the two modes is not a state to run in.
		return refuse(errors.New("dev: cannot change without a restart"))
	}
	changed := changedKeys(&r.applied, &next)
	var restart []string
	// With a logger of the embedder's, whose level is not ours to change,
	// log_level is no live option.
	applies := func(k string) bool {
		return isLive(k) && (k != "log_level" || s.cfg.LogLevelVar != nil) || adminLive(k, &s.cfg, &next)
	}
	for _, k := range changedKeys(&s.cfg, &next) {
		if !applies(k) {
			restart = append(restart, k)
		}
	}
	if s.cfg.Engine == EngineNATS && next.natsHistoryMaxAge() != s.cfg.natsHistoryMaxAge() && !slices.Contains(restart, "nats_history_max_age") {
		// The stream's age limit follows the longest history_ttl only when
		// the engine opens.
		restart = append(restart, "nats_history_max_age")
	}
	next.Auth.Logger = s.cfg.Auth.Logger
	var verifier *auth.Verifier
	var stopAuth context.CancelFunc
	// A key file is read again on every reload: rotating a key usually
	// replaces the file's content, not its name.
	authChanged := !reflect.DeepEqual(r.applied.Auth, next.Auth) || next.Auth.PublicKeyFile != ""
	if authChanged {
		authCtx, cancel := context.WithCancel(context.Background())
		v, err := auth.New(authCtx, next.Auth)
		if err != nil {
			cancel()
			return refuse(err)
		}
		verifier, stopAuth = v, cancel
	}
	if err := s.node.Reload(liveOf(&next)); err != nil {
		if stopAuth != nil {
			stopAuth()
		}
		return refuse(err)
	}
	if authChanged {
		if next.Auth.Enabled() {
			r.verifier.Store(verifier)
		} else {
			r.verifier.Store(nil)
		}
		r.stopAuth()
		r.stopAuth = stopAuth
	}
	check := originChecker(next.Dev, next.AllowedOrigins)
	r.origin.Store(&check)
	if next.APIKey != r.applied.APIKey {
		r.api.SetKey(next.APIKey)
	}
	if next.ConnectionRate != r.applied.ConnectionRate || next.ConnectionBurst != r.applied.ConnectionBurst {
		r.gate.setConnectionRate(next.ConnectionRate, next.ConnectionBurst)
	}
	if s.cfg.LogLevelVar != nil {
		_ = s.cfg.LogLevelVar.UnmarshalText([]byte(next.LogLevel)) // validated
	}
	s.reloadAdmin(ctx, &next)
	// Whatever changed live is in place; what needs a restart is logged
	// once per reload until it is restarted or changed back.
	live := slices.DeleteFunc(changed, func(k string) bool { return !applies(k) })
	if live == nil {
		live = []string{} // logged as [], not null
	}
	r.applied = next
	s.log.InfoContext(ctx, "configuration reloaded", "changed", live)
	if len(restart) > 0 {
		s.log.WarnContext(ctx, "configuration changed, needs restart", "options", restart)
	}
	return nil
}

// liveOf is the node's share of the live options.
func liveOf(c *Config) node.Live {
	return node.Live{Namespaces: c.namespaces(), Limits: node.Limits{
		MaxChannelsPerSession:    c.MaxChannelsPerConnection,
		MaxPublicationSize:       c.MaxPublicationSize,
		MaxRecoveredPublications: c.MaxRecoveredPublications,
		MaxHistoryLimit:          c.MaxHistoryLimit,
		MaxConnectionsPerUser:    c.MaxConnectionsPerUser,
		CommandRate:              c.CommandRate,
		CommandBurst:             c.CommandBurst,
	}}
}

// changedKeys lists the options whose values differ between a and b, by
// their names in a file ("auth.hmac_secret"), in optionTable's order.
func changedKeys(a, b *Config) []string {
	va, vb := flatten(reflect.ValueOf(*a), ""), flatten(reflect.ValueOf(*b), "")
	var out []string
	for _, o := range optionTable() {
		if !reflect.DeepEqual(va[o.key], vb[o.key]) {
			out = append(out, o.key)
		}
	}
	return out
}

// flatten maps the koanf keys of struct v to their values, a section's
// fields under "section.".
func flatten(v reflect.Value, prefix string) map[string]any {
	out := make(map[string]any)
	t := v.Type()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != durationType {
			for k, x := range flatten(f, prefix+tag+".") {
				out[k] = x
			}
			continue
		}
		out[prefix+tag] = f.Interface()
	}
	return out
}
