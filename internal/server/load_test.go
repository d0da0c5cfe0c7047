package server

import (
	"reflect"
	"slices"
	"testing"

	"github.com/knadh/koanf/v2"
)

// Every list of strings reads from the environment as comma-separated
// items, whichever option it is.
func TestEnvSplitsEveryListOption(t *testing.T) {
	def := Defaults()
	var lists []string
	for _, o := range optionTable() {
		v, ok := field(&def, o.key)
		if ok && v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Struct {
			lists = append(lists, o.key)
			t.Setenv(envName(o.key), " a, b ,,c,")
		}
	}
	for _, want := range []string{"allowed_origins", "trusted_proxies", "turn.allowed_peers", "webrtc.public_ips", "proxy.headers", "proxy.cookies"} {
		if !slices.Contains(lists, want) {
			t.Errorf("%s is not a list option", want)
		}
	}
	k := koanf.New(".")
	if err := loadEnv(k); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := k.Unmarshal("", &cfg); err != nil {
		t.Fatal(err)
	}
	for _, key := range lists {
		v, _ := field(&cfg, key)
		if got := v.Interface().([]string); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Errorf("%s from %s: %q, want [a b c]", key, envName(key), got)
		}
	}
}

func TestEnvListsLoad(t *testing.T) {
	t.Setenv("HERALD_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
	t.Setenv("HERALD_TURN__ALLOWED_PEERS", "10.1.0.0/16,10.2.0.0/16")
	t.Setenv("HERALD_WEBRTC__PUBLIC_IPS", "203.0.113.7, 198.51.100.2")
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key       string
		got, want []string
	}{
		{"trusted_proxies", cfg.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.1"}},
		{"turn.allowed_peers", cfg.TURN.AllowedPeers, []string{"10.1.0.0/16", "10.2.0.0/16"}},
		{"webrtc.public_ips", cfg.WebRTC.PublicIPs, []string{"203.0.113.7", "198.51.100.2"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: %q, want %q", c.key, c.got, c.want)
		}
	}
}

// Lists of sections read from a JSON array, namespaces and webhook
// endpoints alike.
func TestEnvSectionListsAreJSON(t *testing.T) {
	t.Setenv("HERALD_WEBHOOKS__ENDPOINTS", `[{"url":"http://127.0.0.1:9/hook","secret":"0123456789abcdef","events":["publish"]}]`)
	k := koanf.New(".")
	if err := loadEnv(k); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := k.Unmarshal("", &cfg); err != nil {
		t.Fatal(err)
	}
	want := []WebhookEndpoint{{URL: "http://127.0.0.1:9/hook", Secret: "0123456789abcdef", Events: []string{"publish"}}}
	if !reflect.DeepEqual(cfg.Webhooks.Endpoints, want) {
		t.Errorf("endpoints %+v, want %+v", cfg.Webhooks.Endpoints, want)
	}

	t.Setenv("HERALD_WEBHOOKS__ENDPOINTS", `{"url":"http://x"}`)
	if err := loadEnv(koanf.New(".")); err == nil {
		t.Error("an endpoint that is not in an array was accepted")
	}
	t.Setenv("HERALD_WEBHOOKS__ENDPOINTS", `[{"url":"http://x","sekret":"y"}]`)
	if err := loadEnv(koanf.New(".")); err == nil {
		t.Error("an unknown option of an endpoint was accepted")
	}
}
