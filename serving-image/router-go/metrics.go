// Prometheus metrics (prefix mdroute_), the same names and labels as mdserve/router/metrics.py,
// written in the text exposition format by hand (no client library).
package main

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0}

// VariantMetrics holds the hot-path metrics of one variant: lock-free counters.
type VariantMetrics struct {
	name    string
	codes   [600]atomic.Uint64
	buckets [16]atomic.Uint64 // non-cumulative; the last one is +Inf
	count   atomic.Uint64
	sumBits atomic.Uint64
}

// Observe records one answered request.
func (v *VariantMetrics) Observe(code int, seconds float64) {
	if code < 0 || code >= len(v.codes) {
		code = 599
	}
	v.codes[code].Add(1)
	i := sort.SearchFloat64s(durationBuckets, seconds) // first bucket >= seconds (le semantics)
	v.buckets[i].Add(1)
	v.count.Add(1)
	for {
		old := v.sumBits.Load()
		if v.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+seconds)) {
			return
		}
	}
}

type labelled struct {
	mu     sync.Mutex
	values map[[2]string]float64
}

func (l *labelled) add(a, b string, d float64) {
	l.mu.Lock()
	if l.values == nil {
		l.values = map[[2]string]float64{}
	}
	l.values[[2]string{a, b}] += d
	l.mu.Unlock()
}

func (l *labelled) set(a, b string, v float64) {
	l.mu.Lock()
	if l.values == nil {
		l.values = map[[2]string]float64{}
	}
	l.values[[2]string{a, b}] = v
	l.mu.Unlock()
}

func (l *labelled) get(a, b string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.values[[2]string{a, b}]
}

func (l *labelled) remove(a, b string) {
	l.mu.Lock()
	delete(l.values, [2]string{a, b})
	l.mu.Unlock()
}

func (l *labelled) clear() {
	l.mu.Lock()
	l.values = nil
	l.mu.Unlock()
}

func (l *labelled) snapshot() ([][2]string, []float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([][2]string, 0, len(l.values))
	for k := range l.values {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i] = l.values[k]
	}
	return keys, vals
}

// Metrics are all router metrics of the process.
type Metrics struct {
	mu             sync.Mutex
	variants       map[string]*VariantMetrics
	order          []string
	UpstreamErrors labelled // variant, kind
	Shadow         labelled // variant, outcome
	FeedbackRouted labelled // variant, how (explicit, remembered, fallback)
	Reloads        labelled // source, outcome
	TableInfo      labelled // version, ""
	Weight         labelled // variant, ""
	TableRejected  atomic.Uint64
	AppliedAtBits  atomic.Uint64
}

// NewMetrics makes an empty registry.
func NewMetrics() *Metrics { return &Metrics{variants: map[string]*VariantMetrics{}} }

// Variant returns (creating) the hot-path metrics of a variant.
func (m *Metrics) Variant(name string) *VariantMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.variants[name]
	if v == nil {
		v = &VariantMetrics{name: name}
		m.variants[name] = v
		m.order = append(m.order, name)
		sort.Strings(m.order)
	}
	return v
}

func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return strings.ReplaceAll(s, "\n", `\n`)
}

func fmtFloat(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func header(b *strings.Builder, name, help, typ string) {
	b.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

func writeLabelled(b *strings.Builder, name string, l *labelled, la, lb string) {
	keys, vals := l.snapshot()
	for i, k := range keys {
		b.WriteString(name + "{" + la + `="` + escapeLabel(k[0]) + `"`)
		if lb != "" {
			b.WriteString("," + lb + `="` + escapeLabel(k[1]) + `"`)
		}
		b.WriteString("} " + fmtFloat(vals[i]) + "\n")
	}
}

// Exposition renders the Prometheus text format (version 0.0.4).
func (m *Metrics) Exposition() []byte {
	var b strings.Builder
	m.mu.Lock()
	vars := make([]*VariantMetrics, 0, len(m.order))
	for _, n := range m.order {
		vars = append(vars, m.variants[n])
	}
	m.mu.Unlock()
	header(&b, "mdroute_requests_total", "Requests answered, by variant and HTTP status code.", "counter")
	for _, v := range vars {
		for code := range v.codes {
			if n := v.codes[code].Load(); n > 0 {
				b.WriteString(`mdroute_requests_total{variant="` + escapeLabel(v.name) + `",code="` + strconv.Itoa(code) + `"} ` + fmtFloat(float64(n)) + "\n")
			}
		}
	}
	header(&b, "mdroute_request_duration_seconds", "Time from request received to response headers sent.", "histogram")
	for _, v := range vars {
		if v.count.Load() == 0 {
			continue
		}
		lv := escapeLabel(v.name)
		var cum uint64
		for i, le := range durationBuckets {
			cum += v.buckets[i].Load()
			b.WriteString(`mdroute_request_duration_seconds_bucket{variant="` + lv + `",le="` + fmtFloat(le) + `"} ` + fmtFloat(float64(cum)) + "\n")
		}
		cum += v.buckets[len(durationBuckets)].Load()
		b.WriteString(`mdroute_request_duration_seconds_bucket{variant="` + lv + `",le="+Inf"} ` + fmtFloat(float64(cum)) + "\n")
		b.WriteString(`mdroute_request_duration_seconds_count{variant="` + lv + `"} ` + fmtFloat(float64(cum)) + "\n")
		b.WriteString(`mdroute_request_duration_seconds_sum{variant="` + lv + `"} ` + fmtFloat(math.Float64frombits(v.sumBits.Load())) + "\n")
	}
	header(&b, "mdroute_upstream_errors_total", "Requests the router answered itself because a backend failed.", "counter")
	writeLabelled(&b, "mdroute_upstream_errors_total", &m.UpstreamErrors, "variant", "kind")
	header(&b, "mdroute_shadow_requests_total", "Shadow copies by outcome (ok, http_error, error, timeout, dropped).", "counter")
	writeLabelled(&b, "mdroute_shadow_requests_total", &m.Shadow, "variant", "outcome")
	header(&b, "mdroute_feedback_routed_total", "Feedback items by the variant they were sent to and how it was chosen (explicit: x-mdroute-variant header or a rule; remembered; fallback: sticky key or split).", "counter")
	writeLabelled(&b, "mdroute_feedback_routed_total", &m.FeedbackRouted, "variant", "how")
	header(&b, "mdroute_table_reloads_total", "Route table deliveries by source and outcome (applied, invalid, error).", "counter")
	writeLabelled(&b, "mdroute_table_reloads_total", &m.Reloads, "source", "outcome")
	header(&b, "mdroute_table_info", "1 for the version of the route table in use.", "gauge")
	writeLabelled(&b, "mdroute_table_info", &m.TableInfo, "version", "")
	header(&b, "mdroute_weight", "Weight of each variant in the table in use.", "gauge")
	writeLabelled(&b, "mdroute_weight", &m.Weight, "variant", "")
	header(&b, "mdroute_table_rejected", "1 while the newest table from a source was rejected and an older one is still in use.", "gauge")
	b.WriteString("mdroute_table_rejected " + fmtFloat(float64(m.TableRejected.Load())) + "\n")
	header(&b, "mdroute_table_last_applied_timestamp_seconds", "Unix time the table in use was applied.", "gauge")
	b.WriteString("mdroute_table_last_applied_timestamp_seconds " + fmtFloat(math.Float64frombits(m.AppliedAtBits.Load())) + "\n")
	return []byte(b.String())
}
