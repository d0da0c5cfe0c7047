package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/node"
)

// Config file formats WriteConfig writes and Load reads.
const (
	FormatYAML = "yaml"
	FormatTOML = "toml"
	FormatJSON = "json"
)

// WriteConfig writes cfg as a config file in format that Load reads back to
// the same Config. YAML and TOML carry a comment per option (its meaning,
// environment variable and flag) and a commented namespace example; JSON,
// having no comments, carries the values only.
func WriteConfig(w io.Writer, cfg Config, format string) error {
	var b bytes.Buffer
	switch format {
	case FormatYAML, FormatTOML:
		writeCommented(&b, &cfg, format)
	case FormatJSON:
		writeJSON(&b, &cfg)
	default:
		return fmt.Errorf("unknown config format %q: want %s, %s or %s", format, FormatYAML, FormatTOML, FormatJSON)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// exampleNamespaces is the commented example in generated files: a closed
// default namespace the backend publishes to, and an open chat namespace.
func exampleNamespaces() []node.NamespaceOptions {
	return []node.NamespaceOptions{
		{Name: "", HistorySize: 100, HistoryTTL: time.Hour, Subscribe: node.AccessAuthenticated, HistoryAccess: node.AccessAuthenticated},
		{
			Name: "chat", HistorySize: 1000, HistoryTTL: 24 * time.Hour, Presence: true, JoinLeave: true,
			Subscribe: node.AccessAnyone, Publish: node.AccessAnyone, HistoryAccess: node.AccessAnyone, PresenceAccess: node.AccessAnyone,
		},
	}
}

// writeCommented writes YAML or TOML: top-level options first, as TOML wants
// keys before tables, then each section, then the namespace list.
func writeCommented(b *bytes.Buffer, cfg *Config, format string) {
	toml := format == FormatTOML
	b.WriteString("# Herald configuration (herald serve --config FILE).\n")
	b.WriteString("# Precedence: defaults < this file < HERALD_* environment variables < flags.\n")
	b.WriteString("# Durations are strings with a unit: \"500ms\", \"10s\", \"5m\", \"1h\".\n")
	var sections []string
	var namespaces option
	for _, o := range optionTable() {
		section, name, nested := strings.Cut(o.key, ".")
		switch {
		case o.key == "namespaces":
			namespaces = o
		case nested:
			if !slices.Contains(sections, section) {
				sections = append(sections, section)
				b.WriteString("\n")
				if toml {
					fmt.Fprintf(b, "[%s]\n", section)
				} else {
					fmt.Fprintf(b, "%s:\n", section)
				}
			}
			indent := "  "
			if toml {
				indent = ""
			}
			writeHelp(b, indent, o)
			writeKey(b, indent, name, literal(cfg, o.key, toml), toml)
		default:
			if len(sections) > 0 {
				panic("server: option " + o.key + " follows a section in optionTable")
			}
			b.WriteString("\n")
			writeHelp(b, "", o)
			writeKey(b, "", o.key, literal(cfg, o.key, toml), toml)
		}
	}
	b.WriteString("\n")
	writeHelp(b, "", namespaces)
	if len(cfg.Namespaces) > 0 {
		writeNamespaceList(b, cfg.Namespaces, toml)
		return
	}
	// An empty TOML array here would land in the last [section]; leaving
	// the key out means the same: no namespaces.
	if !toml {
		b.WriteString("namespaces: []\n")
	}
	var ex bytes.Buffer
	writeNamespaceList(&ex, exampleNamespaces(), toml)
	b.WriteString("# For example:\n")
	for line := range strings.Lines(ex.String()) {
		b.WriteString("# " + line)
	}
}

// writeHelp writes an option's help as comment lines wrapped near 80
// columns, then where else it can be set.
func writeHelp(b *bytes.Buffer, indent string, o option) {
	line := indent + "#"
	for word := range strings.FieldsSeq(o.help) {
		if len(line)+1+len(word) > 80 && line != indent+"#" {
			b.WriteString(line + "\n")
			line = indent + "#"
		}
		line += " " + word
	}
	b.WriteString(line + "\n")
	where := "env " + envName(o.key)
	if o.flag != "" {
		where += ", flag --" + o.flag
	}
	fmt.Fprintf(b, "%s# (%s)\n", indent, where)
}

func writeKey(b *bytes.Buffer, indent, name, value string, toml bool) {
	sep := ": "
	if toml {
		sep = " = "
	}
	b.WriteString(indent + name + sep + value + "\n")
}

func writeNamespaceList(b *bytes.Buffer, list []node.NamespaceOptions, toml bool) {
	if !toml {
		b.WriteString("namespaces:\n")
	}
	for i := range list {
		v := reflect.ValueOf(&list[i]).Elem()
		if toml {
			b.WriteString("[[namespaces]]\n")
		}
		for j := range v.NumField() {
			if j > 0 && v.Field(j).IsZero() {
				continue // zero is the default; listing it adds only noise
			}
			name, value := v.Type().Field(j).Tag.Get("koanf"), encode(plain(v.Field(j)))
			switch {
			case toml:
				writeKey(b, "", name, value, true)
			case j == 0:
				writeKey(b, "  - ", name, value, false)
			default:
				writeKey(b, "    ", name, value, false)
			}
		}
		if toml && i < len(list)-1 {
			b.WriteString("\n")
		}
	}
}

// literal formats the option key of cfg so that YAML, TOML and JSON all
// read it back: JSON strings, numbers, booleans and arrays are valid in the
// other two. Objects (a list of sections, such as webhooks.endpoints) are
// written as TOML inline tables when toml is set.
func literal(cfg *Config, key string, toml bool) string {
	v, ok := field(cfg, key)
	if !ok {
		panic("server: optionTable names unknown option " + key)
	}
	if toml {
		return tomlValue(plain(v))
	}
	return encode(plain(v))
}

// tomlValue is encode for TOML, whose inline tables write key = value
// where JSON objects write "key": value.
func tomlValue(x any) string {
	switch x := x.(type) {
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+" = "+tomlValue(x[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = tomlValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return encode(x)
}

func encode(x any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		panic(fmt.Sprintf("server: option value %v does not encode: %v", x, err))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// plain converts a config value to what a config file holds: durations
// become strings with units, as Load requires, and structs maps keyed by
// their koanf tags.
func plain(v reflect.Value) any {
	switch {
	case v.Type() == durationType:
		return formatDuration(time.Duration(v.Int()))
	case v.Kind() == reflect.Struct:
		m := make(map[string]any, v.NumField())
		for i := range v.NumField() {
			if tag := v.Type().Field(i).Tag.Get("koanf"); tag != "" && tag != "-" {
				m[tag] = plain(v.Field(i))
			}
		}
		return m
	case v.Kind() == reflect.Slice:
		list := make([]any, v.Len())
		for i := range list {
			list[i] = plain(v.Index(i))
		}
		return list
	}
	return v.Interface()
}

// formatDuration is time.Duration.String without its zero units: "5m", not
// "5m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// writeJSON writes cfg as indented JSON (keys sorted, as encoding/json does).
func writeJSON(b *bytes.Buffer, cfg *Config) {
	x, err := json.MarshalIndent(plain(reflect.ValueOf(cfg).Elem()), "", "  ")
	if err != nil {
		panic(fmt.Sprintf("server: config does not encode: %v", err))
	}
	b.Write(x)
	b.WriteString("\n")
}
