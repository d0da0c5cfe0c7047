package server

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// roundTrip writes cfg in format, loads the file back and returns the result.
func roundTrip(t *testing.T, cfg Config, format string) Config {
	t.Helper()
	var b bytes.Buffer
	if err := WriteConfig(&b, cfg, format); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "herald."+format)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path, nil)
	if err != nil {
		t.Fatalf("%s does not load back: %v\n%s", format, err, b.String())
	}
	return got
}

func TestWriteConfigRoundTrip(t *testing.T) {
	custom := Defaults()
	custom.Addr = "0.0.0.0:443"
	custom.APIKey = `k"ey\with#odd:chars`
	custom.Dev = true
	custom.Name = "node-1"
	custom.PingInterval = 90 * time.Second
	custom.IdempotencyTTL = 90 * time.Minute
	custom.MaxMessageSize = 1 << 20
	custom.SSE.Retry = 500 * time.Millisecond
	custom.AllowedOrigins = []string{"https://app.example.com", "*"}
	custom.PresenceTTL = 2 * time.Minute
	custom.Namespaces = exampleNamespaces()
	for _, format := range []string{FormatYAML, FormatTOML, FormatJSON} {
		for name, cfg := range map[string]Config{"defaults": Defaults(), "custom": custom} {
			if got := roundTrip(t, cfg, format); !reflect.DeepEqual(got, cfg) {
				t.Errorf("%s %s: loaded back\n%+v\nwant\n%+v", format, name, got, cfg)
			}
		}
	}
}

func TestWriteConfigComments(t *testing.T) {
	for _, format := range []string{FormatYAML, FormatTOML} {
		var b bytes.Buffer
		if err := WriteConfig(&b, Defaults(), format); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, o := range optionTable() {
			if !strings.Contains(out, envName(o.key)) {
				t.Errorf("%s: no mention of %s", format, envName(o.key))
			}
			if o.flag != "" && !strings.Contains(out, "--"+o.flag) {
				t.Errorf("%s: no mention of --%s", format, o.flag)
			}
		}
	}
	if err := WriteConfig(&bytes.Buffer{}, Defaults(), "ini"); err == nil {
		t.Error("unknown format accepted")
	}
}

// The namespace example in a generated file must work once uncommented.
func TestWriteConfigExample(t *testing.T) {
	for _, format := range []string{FormatYAML, FormatTOML} {
		var b bytes.Buffer
		if err := WriteConfig(&b, Defaults(), format); err != nil {
			t.Fatal(err)
		}
		_, example, ok := strings.Cut(b.String(), "# For example:\n")
		if !ok {
			t.Fatalf("%s: no namespace example", format)
		}
		text := strings.ReplaceAll(example, "# ", "")
		path := filepath.Join(t.TempDir(), "example."+format)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if err != nil {
			t.Fatalf("%s example: %v\n%s", format, err, text)
		}
		if !reflect.DeepEqual(cfg.Namespaces, exampleNamespaces()) {
			t.Errorf("%s example loads as %+v", format, cfg.Namespaces)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Minute: "5m", time.Hour: "1h", 90 * time.Minute: "1h30m", 25 * time.Second: "25s",
		500 * time.Millisecond: "500ms", time.Hour + time.Second: "1h0m1s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
