// The route table: the same JSON document (schema_version 1) as mdserve/router/table.py.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

const (
	routesKey     = "routes.json"
	schemaVersion = 1
	maxWeight     = 1_000_000
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)
	headerRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// Variant is one arm of the split.
type Variant struct {
	Name    string `json:"name"`
	Backend string `json:"backend"`
	Weight  int64  `json:"weight"`
}

// Match is one condition on a header or cookie.
type Match struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Type  string `json:"type"`
}

// Rule pins matching requests to one variant.
type Rule struct {
	Name    string  `json:"name"`
	Variant string  `json:"variant"`
	Headers []Match `json:"headers"`
	Cookies []Match `json:"cookies"`
}

// Sticky says where the sticky key comes from.
type Sticky struct {
	Header *string `json:"header"`
	Cookie *string `json:"cookie"`
	Salt   string  `json:"salt"`
}

// Shadow mirrors a share of requests to a variant.
type Shadow struct {
	Variant string  `json:"variant"`
	Percent float64 `json:"percent"`
}

// Timeouts are upstream timeouts in seconds.
type Timeouts struct {
	ConnectSeconds float64 `json:"connect_seconds"`
	RequestSeconds float64 `json:"request_seconds"`
	ShadowSeconds  float64 `json:"shadow_seconds"`
}

// Table is the whole routing configuration of one ModelDeployment.
type Table struct {
	SchemaVersion int       `json:"schema_version"`
	Version       string    `json:"version"`
	Variants      []Variant `json:"variants"`
	Rules         []Rule    `json:"rules"`
	Sticky        *Sticky   `json:"sticky"`
	Shadows       []Shadow  `json:"shadows"`
	Timeouts      Timeouts  `json:"timeouts"`
}

// VariantIndex returns the index of the variant called name, or -1.
func (t *Table) VariantIndex(name string) int {
	for i := range t.Variants {
		if t.Variants[i].Name == name {
			return i
		}
	}
	return -1
}

// TableError says why a document was rejected.
type TableError struct{ msg string }

func (e *TableError) Error() string { return e.msg }

type checker struct{ problems []string }

func (c *checker) add(loc, msg string) {
	if loc == "" {
		loc = "<root>"
	}
	c.problems = append(c.problems, loc+": "+msg)
}

func join(loc string, key any) string {
	k := fmt.Sprint(key)
	if loc == "" {
		return k
	}
	return loc + "." + k
}

// object checks that v is an object with only allowed keys.
func (c *checker) object(v any, loc string, allowed ...string) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		c.add(loc, "Input should be a valid dictionary or instance of the model")
		return nil, false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		found := false
		for _, a := range allowed {
			if a == k {
				found = true
				break
			}
		}
		if !found {
			c.add(join(loc, k), "Extra inputs are not permitted")
		}
	}
	return m, true
}

func (c *checker) str(m map[string]any, key, loc string, required bool, def string) (string, bool) {
	v, present := m[key]
	if !present {
		if required {
			c.add(join(loc, key), "Field required")
			return "", false
		}
		return def, true
	}
	s, ok := v.(string)
	if !ok {
		c.add(join(loc, key), "Input should be a valid string")
		return "", false
	}
	return s, true
}

func (c *checker) optStr(m map[string]any, key, loc string) (*string, bool) {
	v, present := m[key]
	if !present || v == nil {
		return nil, true
	}
	s, ok := v.(string)
	if !ok {
		c.add(join(loc, key), "Input should be a valid string")
		return nil, false
	}
	return &s, true
}

func (c *checker) number(m map[string]any, key, loc string, def float64) (float64, bool, bool) {
	v, present := m[key]
	if !present {
		return def, false, true
	}
	n, ok := v.(json.Number)
	if !ok {
		c.add(join(loc, key), "Input should be a valid number")
		return 0, true, false
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		c.add(join(loc, key), "Input should be a finite number")
		return 0, true, false
	}
	return f, true, true
}

func (c *checker) list(m map[string]any, key, loc string, required bool) ([]any, bool) {
	v, present := m[key]
	if !present {
		if required {
			c.add(join(loc, key), "Field required")
			return nil, false
		}
		return nil, true
	}
	l, ok := v.([]any)
	if !ok {
		c.add(join(loc, key), "Input should be a valid list")
		return nil, false
	}
	return l, true
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func checkBackend(value string) (string, error) {
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", fmt.Errorf("backend %q must be an absolute http(s) URL with a host", value)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("backend %q must not have a path, query or fragment", value)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return "", fmt.Errorf("backend %q: Port out of range 0-65535", value)
		}
	}
	return strings.TrimRight(value, "/"), nil
}

func (c *checker) match(v any, loc string) (Match, bool) {
	m, ok := c.object(v, loc, "name", "value", "type")
	if !ok {
		return Match{}, false
	}
	name, ok1 := c.str(m, "name", loc, true, "")
	value, ok2 := c.str(m, "value", loc, false, "")
	typ, ok3 := c.str(m, "type", loc, false, "exact")
	if !(ok1 && ok2 && ok3) {
		return Match{}, false
	}
	switch typ {
	case "exact", "prefix", "regex", "present":
	default:
		c.add(join(loc, "type"), "Input should be 'exact', 'prefix', 'regex' or 'present'")
		return Match{}, false
	}
	if name == "" {
		c.add(loc, "Value error, match name must not be empty")
		return Match{}, false
	}
	if typ == "regex" {
		if _, err := regexp.Compile("^(?:" + value + ")$"); err != nil {
			c.add(loc, fmt.Sprintf("Value error, bad regex %q for %q: %v", value, name, err))
			return Match{}, false
		}
	}
	return Match{Name: name, Value: value, Type: typ}, true
}

// ParseTable parses and validates a route table document.
func ParseTable(raw []byte) (*Table, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, &TableError{"route table is not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &TableError{"route table is not valid JSON: extra data after the document"}
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, &TableError{"route table must be a JSON object"}
	}
	c := &checker{}
	t := c.table(doc)
	if len(c.problems) > 0 {
		return nil, &TableError{"invalid route table: " + strings.Join(c.problems, "; ")}
	}
	return t, nil
}

func (c *checker) table(doc any) *Table {
	m, _ := c.object(doc, "", "schema_version", "version", "variants", "rules", "sticky", "shadows", "timeouts")
	t := &Table{SchemaVersion: schemaVersion, Timeouts: Timeouts{2, 60, 10}, Rules: []Rule{}, Shadows: []Shadow{}}
	if sv, present, ok := c.number(m, "schema_version", "", 1); present && ok && sv != schemaVersion {
		c.add("schema_version", "Input should be 1")
	}
	if v, ok := c.str(m, "version", "", true, ""); ok {
		if v == "" || len([]rune(v)) > 128 || !isPrintable(v) {
			c.add("version", "Value error, version must be 1-128 printable characters")
		}
		t.Version = v
	}
	variantsOK := false
	if list, ok := c.list(m, "variants", "", true); ok {
		variantsOK = true
		for i, item := range list {
			loc := join("variants", i)
			vm, ok := c.object(item, loc, "name", "backend", "weight")
			if !ok {
				variantsOK = false
				continue
			}
			var v Variant
			name, okN := c.str(vm, "name", loc, true, "")
			if okN && !nameRE.MatchString(name) {
				c.add(join(loc, "name"), fmt.Sprintf("Value error, variant name %q must be 1-63 chars of [A-Za-z0-9_.-]", name))
				okN = false
			}
			backend, okB := c.str(vm, "backend", loc, true, "")
			if okB {
				var err error
				if backend, err = checkBackend(backend); err != nil {
					c.add(join(loc, "backend"), "Value error, "+err.Error())
					okB = false
				}
			}
			w, present, okW := c.number(vm, "weight", loc, 0)
			if present && okW {
				if w != math.Trunc(w) {
					c.add(join(loc, "weight"), "Input should be a valid integer")
					okW = false
				} else if w < 0 {
					c.add(join(loc, "weight"), "Input should be greater than or equal to 0")
					okW = false
				} else if w > maxWeight {
					c.add(join(loc, "weight"), fmt.Sprintf("Input should be less than or equal to %d", maxWeight))
					okW = false
				}
			}
			if !(okN && okB && okW) {
				variantsOK = false
				continue
			}
			v.Name, v.Backend, v.Weight = name, backend, int64(w)
			t.Variants = append(t.Variants, v)
		}
	}
	if list, ok := c.list(m, "rules", "", false); ok {
		for i, item := range list {
			loc := join("rules", i)
			rm, ok := c.object(item, loc, "name", "variant", "headers", "cookies")
			if !ok {
				continue
			}
			name, ok1 := c.str(rm, "name", loc, true, "")
			variant, ok2 := c.str(rm, "variant", loc, true, "")
			r := Rule{Name: name, Variant: variant, Headers: []Match{}, Cookies: []Match{}}
			good := ok1 && ok2
			for _, kind := range []string{"headers", "cookies"} {
				l, ok := c.list(rm, kind, loc, false)
				if !ok {
					good = false
					continue
				}
				for j, mv := range l {
					mt, ok := c.match(mv, join(join(loc, kind), j))
					if !ok {
						good = false
						continue
					}
					if kind == "headers" {
						r.Headers = append(r.Headers, mt)
					} else {
						r.Cookies = append(r.Cookies, mt)
					}
				}
			}
			if !good {
				continue
			}
			if len(r.Headers) == 0 && len(r.Cookies) == 0 {
				c.add(loc, fmt.Sprintf("Value error, rule %q needs at least one header or cookie condition", name))
				continue
			}
			for _, h := range r.Headers {
				if !headerRE.MatchString(h.Name) {
					c.add(loc, fmt.Sprintf("Value error, rule %q: %q is not a valid header name", name, h.Name))
				}
			}
			t.Rules = append(t.Rules, r)
		}
	}
	if sv, present := m["sticky"]; present && sv != nil {
		if sm, ok := c.object(sv, "sticky", "header", "cookie", "salt"); ok {
			h, ok1 := c.optStr(sm, "header", "sticky")
			ck, ok2 := c.optStr(sm, "cookie", "sticky")
			salt, ok3 := c.str(sm, "salt", "sticky", false, "")
			if ok1 && ok2 && ok3 {
				switch {
				case (h == nil) == (ck == nil):
					c.add("sticky", "Value error, sticky needs exactly one of 'header' or 'cookie'")
				case h != nil && !headerRE.MatchString(*h):
					c.add("sticky", fmt.Sprintf("Value error, sticky header %q is not a valid header name", *h))
				case ck != nil && *ck == "":
					c.add("sticky", "Value error, sticky cookie name must not be empty")
				default:
					t.Sticky = &Sticky{Header: h, Cookie: ck, Salt: salt}
				}
			}
		}
	}
	if list, ok := c.list(m, "shadows", "", false); ok {
		for i, item := range list {
			loc := join("shadows", i)
			sm, ok := c.object(item, loc, "variant", "percent")
			if !ok {
				continue
			}
			v, ok1 := c.str(sm, "variant", loc, true, "")
			p, present, ok2 := c.number(sm, "percent", loc, 0)
			if !present {
				c.add(join(loc, "percent"), "Field required")
				continue
			}
			if ok2 && (p <= 0 || p > 100) {
				if p <= 0 {
					c.add(join(loc, "percent"), "Input should be greater than 0")
				} else {
					c.add(join(loc, "percent"), "Input should be less than or equal to 100")
				}
				continue
			}
			if ok1 && ok2 {
				t.Shadows = append(t.Shadows, Shadow{Variant: v, Percent: p})
			}
		}
	}
	if tv, present := m["timeouts"]; present {
		if tm, ok := c.object(tv, "timeouts", "connect_seconds", "request_seconds", "shadow_seconds"); ok {
			for _, f := range []struct {
				key   string
				limit float64
				dst   *float64
			}{{"connect_seconds", 600, &t.Timeouts.ConnectSeconds}, {"request_seconds", 3600, &t.Timeouts.RequestSeconds}, {"shadow_seconds", 3600, &t.Timeouts.ShadowSeconds}} {
				v, present, ok := c.number(tm, f.key, "timeouts", *f.dst)
				if !present || !ok {
					continue
				}
				if v <= 0 {
					c.add(join("timeouts", f.key), "Input should be greater than 0")
				} else if v > f.limit {
					c.add(join("timeouts", f.key), fmt.Sprintf("Input should be less than or equal to %g", f.limit))
				} else {
					*f.dst = v
				}
			}
		}
	}
	if len(c.problems) > 0 || !variantsOK {
		return t
	}
	// Cross-references (pydantic's model validator: runs only when the fields were valid).
	if len(t.Variants) == 0 {
		c.add("", "Value error, at least one variant is required")
		return t
	}
	seen := map[string]int{}
	var total int64
	for _, v := range t.Variants {
		seen[v.Name]++
		total += v.Weight
	}
	var dups []string
	for n, k := range seen {
		if k > 1 {
			dups = append(dups, n)
		}
	}
	if len(dups) > 0 {
		sort.Strings(dups)
		c.add("", fmt.Sprintf("Value error, duplicate variant names: %q", dups))
		return t
	}
	if total <= 0 {
		c.add("", "Value error, at least one variant must have a positive weight")
		return t
	}
	for _, r := range t.Rules {
		if seen[r.Variant] == 0 {
			c.add("", fmt.Sprintf("Value error, rule %q names unknown variant %q", r.Name, r.Variant))
			return t
		}
	}
	shadowed := map[string]bool{}
	for _, s := range t.Shadows {
		if seen[s.Variant] == 0 {
			c.add("", fmt.Sprintf("Value error, shadow names unknown variant %q", s.Variant))
			return t
		}
		if shadowed[s.Variant] {
			c.add("", "Value error, at most one shadow entry per variant")
			return t
		}
		shadowed[s.Variant] = true
	}
	return t
}
