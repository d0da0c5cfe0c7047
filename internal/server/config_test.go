package server

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldrt/herald/internal/node"
)

// configKeys lists Config's option names by walking its koanf tags: sections
// (structs) are descended into, everything else is one option.
func configKeys(prefix string, t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		if prefix != "" {
			tag = prefix + "." + tag
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			keys = append(keys, configKeys(tag, f.Type)...)
			continue
		}
		keys = append(keys, tag)
	}
	return keys
}

func TestOptionTableListsEveryOption(t *testing.T) {
	var table []string
	for _, o := range optionTable() {
		if o.help == "" {
			t.Errorf("option %s has no help", o.key)
		}
		table = append(table, o.key)
	}
	want := configKeys("", reflect.TypeFor[Config]())
	slices.Sort(want)
	got := slices.Sorted(slices.Values(table))
	if !slices.Equal(got, want) {
		t.Fatalf("optionTable keys\n%v\nConfig keys\n%v", got, want)
	}
	AddFlags(pflag.NewFlagSet("test", pflag.ContinueOnError)) // panics on a flag of unsupported type
}

func TestDocsListEveryOption(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range optionTable() {
		for _, s := range []string{"`" + o.key + "`", envName(o.key)} {
			if !bytes.Contains(doc, []byte(s)) {
				t.Errorf("docs/configuration.md does not mention %s", s)
			}
		}
		if o.flag != "" && !bytes.Contains(doc, []byte("--"+o.flag)) {
			t.Errorf("docs/configuration.md does not mention --%s", o.flag)
		}
	}
}

// The full example in the docs is a file Load accepts.
func TestDocsExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Full example")
	if !ok {
		t.Fatal("docs/configuration.md has no full example")
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("full example has no yaml block")
	}
	cfg, err := Load(writeFile(t, "example.yaml", example), nil)
	if err != nil {
		t.Fatalf("docs example does not load: %v", err)
	}
	if len(cfg.Namespaces) != 3 || cfg.SSE.Retry != 3*time.Second || cfg.LogFormat != "json" {
		t.Errorf("docs example loads as %+v", cfg)
	}
}

func TestLoadDayDurations(t *testing.T) {
	cfg, err := Load(writeFile(t, "c.yaml", "namespaces:\n  - name: a\n    history_size: 1\n    history_ttl: 7d\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespaces[0].HistoryTTL != 7*24*time.Hour {
		t.Errorf("7d loads as %v", cfg.Namespaces[0].HistoryTTL)
	}
}

// The defaults that the README and issue promise a newcomer: a server on
// loopback port 8000 whose acknowledged publications survive a crash.
func TestDefaultsListenOnLoopback8000WithDurableEngine(t *testing.T) {
	def := Defaults()
	if def.Addr != "127.0.0.1:8000" {
		t.Errorf("default addr %q, want 127.0.0.1:8000", def.Addr)
	}
	if def.Engine != EngineDurable || EngineDurable != "durable" {
		t.Errorf("default engine %q, want durable", def.Engine)
	}
	if def.Dev {
		t.Error("dev mode is on by default")
	}
}

func TestEnvNames(t *testing.T) {
	for key, env := range map[string]string{"api_key": "HERALD_API_KEY", "sse.keep_alive": "HERALD_SSE__KEEP_ALIVE"} {
		if got := envName(key); got != env {
			t.Errorf("envName(%q) = %q, want %q", key, got, env)
		}
		if got := keyOfEnv(env); got != key {
			t.Errorf("keyOfEnv(%q) = %q, want %q", env, got, key)
		}
	}
	got := unknownEnv([]string{"HERALD_API_KEY=x", "HERALD_APIKEY=y", "HERALD_CONFIG=f", "HOME=/", "HERALD_SSE__RETRY=1s"})
	if !slices.Equal(got, []string{"HERALD_APIKEY"}) {
		t.Errorf("unknownEnv = %v", got)
	}
}

func TestValidate(t *testing.T) {
	def := Defaults()
	if err := def.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	cases := []struct {
		key    string
		mutate func(*Config)
	}{
		{"addr", func(c *Config) { c.Addr = "localhost" }},
		{"engine", func(c *Config) { c.Engine = "cassandra" }},
		{"data_dir", func(c *Config) { c.DataDir = "" }},
		{"api_key", func(c *Config) { c.APIKey = "two words" }},
		{"log_level", func(c *Config) { c.LogLevel = "loud" }},
		{"log_format", func(c *Config) { c.LogFormat = "xml" }},
		{"ping_interval", func(c *Config) { c.PingInterval = 0 }},
		{"sse.retry", func(c *Config) { c.SSE.Retry = -time.Second }},
		{"max_history_limit", func(c *Config) { c.MaxHistoryLimit = 0 }},
		{"max_message_size", func(c *Config) { c.MaxMessageSize = c.MaxPublicationSize }},
		{"max_queue_bytes", func(c *Config) { c.MaxQueueBytes = 100 }},
		{"presence_ttl", func(c *Config) { c.PresenceTTL = c.PingInterval }},
		{"allowed_origins", func(c *Config) { c.AllowedOrigins = []string{"example.com"} }},
		{"namespaces[0]", func(c *Config) { c.Namespaces = []node.NamespaceOptions{{Name: "chat", Publish: "everyone"}} }},
		{"namespaces[1]", func(c *Config) { c.Namespaces = []node.NamespaceOptions{{Name: "a"}, {Name: "a"}} }},
		{"namespaces[0]", func(c *Config) { c.Namespaces = []node.NamespaceOptions{{Name: "call", WebRTC: true}} }},
		{"turn.enabled", func(c *Config) { c.TURN.Enabled = "yes" }},
		{"turn.addr", func(c *Config) { c.TURN.Addr = "localhost:3478" }},
		{"turn.public_ip", func(c *Config) { c.TURN.Addr = "0.0.0.0:3478" }},
		{"turn.tls_addr", func(c *Config) { c.TURN.TLSAddr = "127.0.0.1:5349" }},
		{"turn.secret", func(c *Config) { c.TURN.Secret = "short" }},
		{"turn.credential_ttl", func(c *Config) { c.TURN.CredentialTTL = 0 }},
		{"turn.allowed_peers", func(c *Config) { c.TURN.AllowedPeers = []string{"10.0.0.0/33"} }},
		{"turn.user_bitrate", func(c *Config) { c.TURN.UserBitrate = -1 }},
		{"redis_url", func(c *Config) { c.Engine = EngineRedis }},
		{"redis_url", func(c *Config) { c.Engine, c.RedisURL = EngineRedis, "localhost:6379" }},
		{"redis_url", func(c *Config) { c.Engine, c.RedisURL = EngineRedis, "nats://127.0.0.1:4222" }},
		{"nats_url", func(c *Config) { c.Engine = EngineNATS }},
		{"nats_replicas", func(c *Config) { c.Engine, c.NATSURL, c.NATSReplicas = EngineNATS, "nats://127.0.0.1:4222", 2 }},
		{"nats_history_max_age", func(c *Config) {
			c.Engine, c.NATSURL, c.NATSHistoryMaxAge = EngineNATS, "nats://127.0.0.1:4222", -time.Second
		}},
		{"nats_history_max_age", func(c *Config) {
			c.Engine, c.NATSURL, c.NATSHistoryMaxAge = EngineNATS, "nats://127.0.0.1:4222", time.Hour
			c.Namespaces = []node.NamespaceOptions{{Name: "chat", HistorySize: 10, HistoryTTL: 2 * time.Hour}}
		}},
		{"engine_prefix", func(c *Config) { c.Engine, c.NATSURL, c.EnginePrefix = EngineNATS, "nats://127.0.0.1:4222", "a.b" }},
	}
	for _, c := range cases {
		cfg := Defaults()
		c.mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.key+":") {
			t.Errorf("%s: error %v does not name the option", c.key, err)
		}
	}
	cfg := Defaults()
	cfg.Addr, cfg.Engine = "nope", "nope"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "addr:") || !strings.Contains(err.Error(), "engine:") {
		t.Errorf("Validate does not report every error: %v", err)
	}
	cfg = Defaults()
	cfg.Engine, cfg.DataDir = EngineMemory, ""
	cfg.AllowedOrigins = []string{"*", "https://app.example.com", "http://localhost:3000/"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("memory engine without data_dir: %v", err)
	}
	for _, u := range []string{"redis://10.0.0.5:6379/2", "rediss://user:pass@redis.example:6380", "unix:///run/redis.sock",
		"redis://s1:26379?addr=s2:26379&master_set=mymaster"} {
		cfg = Defaults()
		cfg.Engine, cfg.RedisURL = EngineRedis, u
		if err := cfg.Validate(); err != nil {
			t.Errorf("redis_url %q: %v", u, err)
		}
	}
	cfg = Defaults()
	cfg.Engine, cfg.NATSURL, cfg.NATSReplicas = EngineNATS, "nats://n1:4222,nats://n2:4222", 3
	if err := cfg.Validate(); err != nil {
		t.Errorf("nats engine with a cluster URL and 3 replicas: %v", err)
	}
}

// TestNATSHistoryMaxAge: the nats engine's stream keeps history as long as
// the longest-lived namespace needs, unless nats_history_max_age says longer.
func TestNATSHistoryMaxAge(t *testing.T) {
	cfg := Defaults()
	cfg.Engine, cfg.NATSURL = EngineNATS, "nats://127.0.0.1:4222"
	if got := cfg.natsHistoryMaxAge(); got != defaultNATSHistoryMaxAge {
		t.Errorf("without history anywhere: %v, want %v", got, defaultNATSHistoryMaxAge)
	}
	cfg.Namespaces = []node.NamespaceOptions{
		{Name: "chat", HistorySize: 100, HistoryTTL: 2 * time.Hour},
		{Name: "feed", HistorySize: 100, HistoryTTL: 5 * time.Minute},
		{Name: "typing"},
	}
	if got := cfg.natsHistoryMaxAge(); got != 2*time.Hour {
		t.Errorf("longest history_ttl 2h: %v", got)
	}
	cfg.Dev = true
	if got := cfg.natsHistoryMaxAge(); got != node.DevNamespace("").HistoryTTL {
		t.Errorf("dev mode, whose open namespaces keep history %v: %v", node.DevNamespace("").HistoryTTL, got)
	}
	cfg.NATSHistoryMaxAge = 72 * time.Hour
	if err := cfg.Validate(); err != nil {
		t.Fatalf("nats_history_max_age above every history_ttl: %v", err)
	}
	if got := cfg.natsHistoryMaxAge(); got != 72*time.Hour {
		t.Errorf("configured 72h: %v", got)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func serveFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.String("config", "", "")
	AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestLoadPrecedence(t *testing.T) {
	file := writeFile(t, "herald.yaml", `
addr: "127.0.0.1:1111"
engine: memory
name: from-file
api_key: file-key
log_level: debug
sse:
  keep_alive: 5s
  retry: 1s
`)
	t.Setenv("HERALD_API_KEY", "env-key")
	t.Setenv("HERALD_ADDR", "127.0.0.1:2222")
	t.Setenv("HERALD_SSE__KEEP_ALIVE", "7s")
	t.Setenv("HERALD_DEV", "true")
	// --engine and --log-level are defined but not given: their defaults
	// must not override the file.
	cfg, err := Load(file, serveFlags(t, "--addr", "127.0.0.1:3333", "--data-dir", "/tmp/flag-dir", "--config", "ignored"))
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Addr = "127.0.0.1:3333"         // flag > env > file
	want.DataDir = "/tmp/flag-dir"       // flag > default
	want.APIKey = "env-key"              // env > file
	want.SSE.KeepAlive = 7 * time.Second // env > file, nested
	want.SSE.Retry = time.Second         // file > default, nested
	want.Engine = EngineMemory           // file, unset flag
	want.LogLevel = "debug"              // file, unset flag
	want.Name = "from-file"              // file only
	want.Dev = true                      // env only
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", cfg, want)
	}

	// A flag given explicitly wins even when it repeats the default.
	cfg, err = Load(file, serveFlags(t, "--engine", "durable", "--dev=false"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine != EngineDurable || cfg.Dev {
		t.Errorf("explicit default flags lost: engine %q dev %v", cfg.Engine, cfg.Dev)
	}
}

func TestLoadWithoutSources(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Defaults()) {
		t.Fatalf("Load with no sources = %+v", cfg)
	}
}

func TestLoadFormats(t *testing.T) {
	files := map[string]string{
		"c.yaml": "addr: \"0.0.0.0:9000\"\nsse:\n  retry: 3s\nnamespaces:\n  - name: chat\n    history_size: 10\n    history_ttl: 1h\n    subscribe: anyone\n",
		"c.yml":  "addr: \"0.0.0.0:9000\"\nsse:\n  retry: 3s\nnamespaces:\n  - name: chat\n    history_size: 10\n    history_ttl: 1h\n    subscribe: anyone\n",
		"c.toml": "addr = \"0.0.0.0:9000\"\n[sse]\nretry = \"3s\"\n[[namespaces]]\nname = \"chat\"\nhistory_size = 10\nhistory_ttl = \"1h\"\nsubscribe = \"anyone\"\n",
		"c.json": `{"addr":"0.0.0.0:9000","sse":{"retry":"3s"},"namespaces":[{"name":"chat","history_size":10,"history_ttl":"1h","subscribe":"anyone"}]}`,
	}
	want := Defaults()
	want.Addr = "0.0.0.0:9000"
	want.SSE.Retry = 3 * time.Second
	want.Namespaces = []node.NamespaceOptions{{Name: "chat", HistorySize: 10, HistoryTTL: time.Hour, Subscribe: node.AccessAnyone}}
	for name, content := range files {
		cfg, err := Load(writeFile(t, name, content), nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("%s: loaded\n%+v\nwant\n%+v", name, cfg, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, file, content, want string
	}{
		{"unknown key", "c.yaml", "adr: x\n", `unknown option "adr"`},
		{"unknown nested key", "c.yaml", "sse:\n  keepalive: 1s\n", `unknown option "sse.keepalive"`},
		{"unknown namespace key", "c.yaml", "namespaces:\n  - name: a\n    histroy_size: 1\n", `unknown option "namespaces[0].histroy_size"`},
		{"scalar section", "c.yaml", "sse: 5\n", "sse: want a section"},
		{"bare number duration", "c.yaml", "ping_interval: 30\n", "ping_interval: write durations as strings"},
		{"bare number namespace duration", "c.json", `{"namespaces":[{"name":"a","history_size":1,"history_ttl":60}]}`, "namespaces[0].history_ttl: write durations"},
		{"bad duration", "c.yaml", "ping_interval: soon\n", "ping_interval"},
		{"bad type", "c.yaml", "max_queue_bytes: lots\n", "max_queue_bytes"},
		{"invalid value", "c.yaml", "engine: cassandra\n", "engine:"},
		{"syntax", "c.json", "{", "config file"},
		{"extension", "c.ini", "addr=x", "unknown format"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeFile(t, c.file, c.content), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := Load(filepath.Join(t.TempDir(), "none.yaml"), nil); err == nil {
			t.Fatal("no error for a missing file")
		}
	})
}

func TestLoadEnvironment(t *testing.T) {
	t.Setenv("HERALD_NAMESPACES", `[{"name":"","history_size":5,"history_ttl":"1m","publish":"anyone"}]`)
	t.Setenv("HERALD_ALLOWED_ORIGINS", "https://a.example, http://b.example:8080 ,")
	t.Setenv("HERALD_MAX_QUEUE_BYTES", "2097152")
	t.Setenv("HERALD_APIKEY", "typo is ignored here, warned about by New")
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantNS := []node.NamespaceOptions{{Name: "", HistorySize: 5, HistoryTTL: time.Minute, Publish: node.AccessAnyone}}
	if !reflect.DeepEqual(cfg.Namespaces, wantNS) {
		t.Errorf("namespaces %+v", cfg.Namespaces)
	}
	if !slices.Equal(cfg.AllowedOrigins, []string{"https://a.example", "http://b.example:8080"}) {
		t.Errorf("allowed origins %q", cfg.AllowedOrigins)
	}
	if cfg.MaxQueueBytes != 2<<20 || cfg.APIKey != "" {
		t.Errorf("max_queue_bytes %d, api_key %q", cfg.MaxQueueBytes, cfg.APIKey)
	}

	t.Setenv("HERALD_NAMESPACES", `{"name":"x"}`)
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "HERALD_NAMESPACES") {
		t.Errorf("bad HERALD_NAMESPACES: %v", err)
	}
	t.Setenv("HERALD_NAMESPACES", "")
	t.Setenv("HERALD_PING_INTERVAL", "30")
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "ping_interval") {
		t.Errorf("unitless HERALD_PING_INTERVAL: %v", err)
	}
}
