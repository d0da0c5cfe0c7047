package test

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/server"
	"github.com/heraldrt/herald/internal/testkit"
)

// TestSecurityDocLimitsMatchDefaults reads the limits table of
// docs/security.md and checks every option it names against
// server.Defaults(): the option exists, and its default is the one the
// table states, so the page cannot drift from the code.
func TestSecurityDocLimitsMatchDefaults(t *testing.T) {
	doc, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := limitsTable(t, string(doc))
	defaults := optionValues(server.Defaults())
	option := regexp.MustCompile("`([a-z_.]+)`")
	checked := 0
	for _, row := range rows {
		limit, opts, def := row[0], row[1], row[2]
		if strings.Contains(opts, "(fixed)") || opts == "" {
			continue
		}
		var names []string
		for _, m := range option.FindAllStringSubmatch(opts, -1) {
			names = append(names, m[1])
		}
		if len(names) == 0 {
			t.Errorf("%q: option column %q names no option", limit, opts)
			continue
		}
		for _, name := range names {
			if _, ok := defaults[name]; !ok {
				t.Errorf("%q: option %q is not an option of herald serve", limit, name)
			}
		}
		if def == "" {
			continue // derived from other options, as the option column says
		}
		// "20/s, burst 100" gives one value per option named.
		values := strings.Split(def, ", ")
		if len(values) != len(names) {
			t.Errorf("%q: default %q has %d values for options %v", limit, def, len(values), names)
			continue
		}
		for i, name := range names {
			v, ok := defaults[name]
			if !ok {
				continue
			}
			want, err := docValue(values[i], v.Type())
			if err != nil {
				t.Errorf("%q: default %q of %s: %v", limit, values[i], name, err)
				continue
			}
			if !reflect.DeepEqual(v.Interface(), want) {
				t.Errorf("%q: docs/security.md says %s defaults to %q (%v), server.Defaults() has %v", limit, name, values[i], want, v.Interface())
			}
			checked++
		}
	}
	t.Logf("%d rows, %d option defaults checked", len(rows), checked)
	if checked < 10 {
		t.Errorf("only %d defaults checked: is the table still where this test looks?", checked)
	}
}

// limitsTable returns the cells of the first three columns (limit, option,
// default) of each body row of the table under "## Limits".
func limitsTable(t *testing.T, doc string) [][3]string {
	t.Helper()
	table, err := testkit.MarkdownTable(doc, "## Limits")
	if err != nil {
		t.Fatalf("docs/security.md: %v", err)
	}
	var rows [][3]string
	for _, cells := range table {
		if len(cells) != 4 {
			t.Fatalf("limits table row with %d cells: %q", len(cells), cells)
		}
		rows = append(rows, [3]string(cells[:3]))
	}
	return rows
}

// optionValues maps each top-level option name of c (its koanf tag) to
// its value.
func optionValues(c server.Config) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		if name := v.Type().Field(i).Tag.Get("koanf"); name != "" && name != "-" {
			out[name] = v.Field(i)
		}
	}
	return out
}

// docValue parses a default as the page writes it ("128 KiB", "1,000",
// "10 s", "20/s", "burst 100") into a value of type typ.
func docValue(s string, typ reflect.Type) (any, error) {
	s = strings.TrimPrefix(strings.TrimSuffix(s, "/s"), "burst ")
	s = strings.ReplaceAll(s, ",", "")
	if typ == reflect.TypeFor[time.Duration]() {
		return time.ParseDuration(strings.ReplaceAll(s, " ", ""))
	}
	scale := 1.0
	for suffix, n := range map[string]float64{" KiB": 1 << 10, " MiB": 1 << 20} {
		if rest, ok := strings.CutSuffix(s, suffix); ok {
			s, scale = rest, n
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, err
	}
	if f *= scale; typ.Kind() != reflect.Float64 && f != math.Trunc(f) {
		return nil, fmt.Errorf("%v is not a whole number", f)
	}
	return reflect.ValueOf(f).Convert(typ).Interface(), nil
}
