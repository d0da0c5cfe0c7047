package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	kjson "github.com/knadh/koanf/parsers/json"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// Load builds the configuration from, in increasing precedence: Defaults;
// the file, when configFile is not empty (YAML, TOML or JSON by its extension);
// HERALD_* environment variables (see envName; HERALD_CONFIG is left to the
// caller); and the flags of flags that were set on the command line (flags
// may be nil; see AddFlags). Unknown options in the file, mistyped values
// and invalid settings are errors that name the option and where it came
// from; unknown HERALD_* variables are ignored here and warned about by New.
func Load(configFile string, flags *pflag.FlagSet) (Config, error) {
	k := koanf.New(".")
	if configFile != "" {
		if err := loadFile(k, configFile); err != nil {
			return Config{}, err
		}
	}
	if err := loadEnv(k); err != nil {
		return Config{}, err
	}
	if flags != nil {
		if err := loadFlags(k, flags); err != nil {
			return Config{}, err
		}
	}
	cfg := Defaults()
	if err := k.Unmarshal("", &cfg); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func loadFile(k *koanf.Koanf, path string) error {
	var parser koanf.Parser
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		parser = yaml.Parser()
	case ".toml":
		parser = toml.Parser()
	case ".json":
		parser = kjson.Parser()
	default:
		return fmt.Errorf("config file %s: unknown format: name it .yaml, .yml, .toml or .json", path)
	}
	fk := koanf.New(".")
	if err := fk.Load(file.Provider(path), parser); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if err := errors.Join(checkKeys("", fk.Raw(), reflect.TypeFor[Config]())...); err != nil {
		return fmt.Errorf("config file %s:\n%w", path, err)
	}
	return k.Merge(fk)
}

func loadEnv(k *koanf.Koanf) error {
	known := knownKeys()
	def := Defaults()
	var errs []error
	ek := koanf.New(".")
	err := ek.Load(env.Provider(".", env.Opt{
		Prefix: envPrefix,
		TransformFunc: func(name, value string) (string, any) {
			if name == envConfigFile {
				return "", nil
			}
			key := keyOfEnv(name)
			if !known[key] {
				return "", nil // reported by unknownEnv
			}
			list, err := envList(&def, key, value)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return "", nil
			}
			if list != nil {
				return key, list
			}
			return key, value
		},
	}), nil)
	if err == nil {
		errs = append(errs, checkKeys("", ek.Raw(), reflect.TypeFor[Config]())...)
		err = errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("environment:\n%w", err)
	}
	return k.Merge(ek)
}

func loadFlags(k *koanf.Koanf, flags *pflag.FlagSet) error {
	keyOfFlag := make(map[string]string)
	for _, o := range optionTable() {
		if o.flag != "" {
			keyOfFlag[o.flag] = o.key
		}
	}
	// With no koanf instance to consult, posflag skips every flag left at
	// its default: only what the user typed overrides the file and env.
	return k.Load(posflag.ProviderWithFlag(flags, ".", nil, func(f *pflag.Flag) (string, any) {
		key, ok := keyOfFlag[f.Name]
		if !ok {
			return "", nil
		}
		return key, posflag.FlagVal(flags, f)
	}), nil)
}

func knownKeys() map[string]bool {
	known := make(map[string]bool)
	for _, o := range optionTable() {
		known[o.key] = true
	}
	return known
}

// unknownEnv lists the HERALD_* variables of environ that name no option.
// Load ignores them rather than failing, because other tools may share the
// prefix (a client's HERALD_URL, say), so the server warns about them
// instead: a misspelt variable should not go unnoticed.
func unknownEnv(environ []string) []string {
	known := knownKeys()
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && name != envConfigFile && !known[keyOfEnv(name)] {
			out = append(out, name)
		}
	}
	return out
}

var durationType = reflect.TypeFor[time.Duration]()

// checkKeys reports keys of m that no koanf tag of struct t names, and values
// of the wrong shape: a scalar where a section or list belongs, or a bare
// number for a duration, which would otherwise be taken as nanoseconds.
func checkKeys(prefix string, m map[string]any, t reflect.Type) []error {
	var errs []error
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		f, ok := fieldByTag(t, name)
		if !ok {
			errs = append(errs, fmt.Errorf("unknown option %q", key))
			continue
		}
		errs = append(errs, checkValue(key, m[name], f.Type)...)
	}
	return errs
}

func checkValue(key string, v any, t reflect.Type) []error {
	if v == nil {
		return nil
	}
	switch {
	case t == durationType:
		if _, ok := v.(string); !ok {
			return []error{fmt.Errorf("%s: write durations as strings with a unit, like \"30s\" or \"5m\", not %v", key, v)}
		}
	case t.Kind() == reflect.Struct:
		section, ok := v.(map[string]any)
		if !ok {
			return []error{fmt.Errorf("%s: want a section of options, not %v", key, v)}
		}
		return checkKeys(key, section, t)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		list, ok := v.([]any)
		if !ok {
			return []error{fmt.Errorf("%s: want a list, not %v", key, v)}
		}
		var errs []error
		for i, e := range list {
			item, ok := e.(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("%s[%d]: want a section of options, not %v", key, i, e))
				continue
			}
			errs = append(errs, checkKeys(fmt.Sprintf("%s[%d]", key, i), item, t.Elem())...)
		}
		return errs
	}
	return nil
}

// envList reads the environment value of a list option by the option's
// type, so every list reads the same way: a list of sections (namespaces,
// webhooks.endpoints) from a JSON array, any other list from comma-separated
// items. It returns nil for options that are not lists.
func envList(def *Config, key, value string) (any, error) {
	v, ok := field(def, key)
	if !ok || v.Kind() != reflect.Slice {
		return nil, nil
	}
	if v.Type().Elem().Kind() != reflect.Struct {
		return splitList(value), nil
	}
	list := []any{}
	if strings.TrimSpace(value) == "" {
		return list, nil
	}
	if err := json.Unmarshal([]byte(value), &list); err != nil {
		return nil, fmt.Errorf("want a JSON array of sections: %w", err)
	}
	return list, nil
}

// splitList splits a comma-separated environment value, dropping blanks.
func splitList(s string) []string {
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
