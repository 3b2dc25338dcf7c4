// Pure routing decisions: route table + request headers -> primary variant and shadow variants
// (the same semantics as mdserve/router/decide.py).
package main

import (
	"math"
	"math/bits"
	"regexp"
	"strings"
	"sync"
)

const shadowScale = 1_000_000

// Headers gives the first value of a request header by lower-case name.
type Headers interface {
	Get(lower string) (string, bool)
}

// MapHeaders is a Headers for tests (keys must be lower-case).
type MapHeaders map[string]string

// Get implements Headers.
func (m MapHeaders) Get(lower string) (string, bool) { v, ok := m[lower]; return v, ok }

// Decision says where one request goes.
type Decision struct {
	Variant int
	Reason  string
	Shadows []int
}

// ParseCookies parses a Cookie header leniently; the first occurrence of a name wins.
func ParseCookies(header string) map[string]string {
	jar := map[string]string{}
	for _, pair := range strings.Split(header, ";") {
		pair = strings.TrimSpace(pair)
		name, value, ok := strings.Cut(pair, "=")
		if !ok || name == "" {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		name = strings.TrimSpace(name)
		if _, seen := jar[name]; !seen {
			jar[name] = value
		}
	}
	return jar
}

type predicate struct {
	name  string
	kind  string
	value string
	re    *regexp.Regexp
}

func (p *predicate) test(got string, present bool) bool {
	switch p.kind {
	case "present":
		return present
	case "prefix":
		return present && strings.HasPrefix(got, p.value)
	case "regex":
		return present && p.re.MatchString(got)
	default:
		return present && got == p.value
	}
}

type compiledRule struct {
	name    string
	reason  string
	variant int
	headers []predicate
	cookies []predicate
}

func compile(ms []Match, lower bool) []predicate {
	out := make([]predicate, 0, len(ms))
	for _, m := range ms {
		p := predicate{name: m.Name, kind: m.Type, value: m.Value}
		if lower {
			p.name = strings.ToLower(m.Name)
		}
		if m.Type == "regex" {
			p.re = regexp.MustCompile("^(?:" + m.Value + ")$")
		}
		out = append(out, p)
	}
	return out
}

// SWRR is nginx's smooth weighted round-robin: exact shares over every window of sum(weights).
type SWRR struct {
	indices []int
	weights []int64
	current []int64
	total   int64
}

// NewSWRR builds the split for weights (at least one positive).
func NewSWRR(weights []int64) *SWRR {
	s := &SWRR{}
	for i, w := range weights {
		if w > 0 {
			s.indices = append(s.indices, i)
			s.weights = append(s.weights, w)
			s.total += w
		}
	}
	s.current = make([]int64, len(s.weights))
	return s
}

// Pick returns the index (into the original weights) of the next arm.
func (s *SWRR) Pick() int {
	best := 0
	for i, w := range s.weights {
		s.current[i] += w
		if s.current[i] > s.current[best] {
			best = i
		}
	}
	s.current[best] -= s.total
	return s.indices[best]
}

// StickyPoint is a stable point in [0, total) for key (blake2b of salt \0 key, scaled).
func StickyPoint(key, salt string, total uint64) uint64 {
	buf := make([]byte, 0, len(salt)+1+len(key))
	buf = append(buf, salt...)
	buf = append(buf, 0)
	buf = append(buf, key...)
	hi, _ := bits.Mul64(blake2b64(buf), total)
	return hi
}

// Decider is the compiled form of one table; Decide is safe for concurrent use.
type Decider struct {
	names        []string
	cumulative   []uint64
	total        uint64
	rules        []compiledRule
	stickyHeader string
	stickyCookie string
	hasSticky    bool
	salt         string
	needCookies  bool

	mu        sync.Mutex
	split     *SWRR
	shadowVar []int
	shadowShr []int64
	shadowAcc []int64
}

// NewDecider compiles a validated table.
func NewDecider(t *Table) *Decider {
	d := &Decider{}
	weights := make([]int64, len(t.Variants))
	var running uint64
	for i, v := range t.Variants {
		d.names = append(d.names, v.Name)
		weights[i] = v.Weight
		running += uint64(v.Weight)
		d.cumulative = append(d.cumulative, running)
	}
	d.total = running
	d.split = NewSWRR(weights)
	for _, r := range t.Rules {
		d.rules = append(d.rules, compiledRule{
			name: r.Name, reason: "rule:" + r.Name, variant: t.VariantIndex(r.Variant),
			headers: compile(r.Headers, true), cookies: compile(r.Cookies, false),
		})
		if len(r.Cookies) > 0 {
			d.needCookies = true
		}
	}
	if t.Sticky != nil {
		d.hasSticky = true
		d.salt = t.Sticky.Salt
		if t.Sticky.Header != nil {
			d.stickyHeader = strings.ToLower(*t.Sticky.Header)
		} else {
			d.stickyCookie = *t.Sticky.Cookie
		}
	}
	for _, s := range t.Shadows {
		d.shadowVar = append(d.shadowVar, t.VariantIndex(s.Variant))
		d.shadowShr = append(d.shadowShr, int64(math.RoundToEven(s.Percent*shadowScale/100)))
	}
	d.shadowAcc = make([]int64, len(d.shadowVar))
	return d
}

// StickyVariant is the variant index a sticky key maps to under the current weights.
func (d *Decider) StickyVariant(key string) int {
	point := StickyPoint(key, d.salt, d.total)
	for i, c := range d.cumulative {
		if c > point {
			return i
		}
	}
	return len(d.cumulative) - 1
}

// rule is the first rule whose conditions all hold, or nil.
func (d *Decider) rule(h Headers, cookies func() map[string]string) *compiledRule {
rules:
	for i := range d.rules {
		r := &d.rules[i]
		for j := range r.headers {
			p := &r.headers[j]
			got, ok := h.Get(p.name)
			if !p.test(got, ok) {
				continue rules
			}
		}
		if len(r.cookies) > 0 {
			jar := cookies()
			for j := range r.cookies {
				p := &r.cookies[j]
				got, ok := jar[p.name]
				if !p.test(got, ok) {
					continue rules
				}
			}
		}
		return r
	}
	return nil
}

// RuleVariant is the variant index the first matching rule pins (-1: none), without touching the
// split's state.
func (d *Decider) RuleVariant(h Headers) int {
	r := d.rule(h, func() map[string]string { c, _ := h.Get("cookie"); return ParseCookies(c) })
	if r == nil {
		return -1
	}
	return r.variant
}

// Decide routes one request given its headers.
func (d *Decider) Decide(h Headers) Decision {
	var jar map[string]string
	cookies := func() map[string]string {
		if jar == nil {
			c, _ := h.Get("cookie")
			jar = ParseCookies(c)
		}
		return jar
	}
	variant, reason := -1, "split"
	if r := d.rule(h, cookies); r != nil {
		variant, reason = r.variant, r.reason
	}
	if variant < 0 {
		key := ""
		if d.hasSticky {
			if d.stickyHeader != "" {
				key, _ = h.Get(d.stickyHeader)
			} else {
				key = cookies()[d.stickyCookie]
			}
		}
		if key != "" {
			variant, reason = d.StickyVariant(key), "sticky"
		}
	}
	if variant < 0 || len(d.shadowVar) > 0 {
		d.mu.Lock()
		if variant < 0 {
			variant = d.split.Pick()
		}
		var shadows []int
		for i, sv := range d.shadowVar {
			if sv == variant {
				continue // the variant already serves this request
			}
			acc := d.shadowAcc[i] + d.shadowShr[i]
			if acc >= shadowScale {
				acc -= shadowScale
				shadows = append(shadows, sv)
			}
			d.shadowAcc[i] = acc
		}
		d.mu.Unlock()
		return Decision{variant, reason, shadows}
	}
	return Decision{variant, reason, nil}
}
