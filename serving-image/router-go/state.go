// The table in use: validates what sources deliver, keeps the last good table, reports why.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Active is a validated table ready to serve from.
type Active struct {
	Table     *Table
	Decider   *Decider
	Backends  []string          // effective backend URL per variant index
	Pools     []*Backend        // connection pool per variant index
	Shadow    []*Backend        // shadow connection pool per variant index
	Stats     []*VariantMetrics // hot-path metrics per variant index
	Digest    string
	Source    string
	AppliedAt float64
	connect   time.Duration
	request   time.Duration
	shadowT   time.Duration
}

// ResolveBackends applies --backend-override: a key matches a variant name, backend host:port or host.
func ResolveBackends(t *Table, overrides map[string]string) []string {
	out := make([]string, len(t.Variants))
	for i, v := range t.Variants {
		out[i] = v.Backend
		u, err := url.Parse(v.Backend)
		keys := []string{v.Name}
		if err == nil {
			keys = append(keys, u.Host, u.Hostname())
		}
		for _, k := range keys {
			if o, ok := overrides[k]; ok {
				out[i] = strings.TrimRight(o, "/")
				break
			}
		}
	}
	return out
}

// Holder owns the active table; sources call Offer / SourceError, the proxy reads Active.
type Holder struct {
	metrics   *Metrics
	overrides map[string]string
	mapped    map[string]string // from the backend map file; static overrides win over it
	pools     *Pools
	active    atomic.Pointer[Active]

	mu           sync.Mutex
	lastError    *string
	lastRejected string
}

// NewHolder makes a holder with no table.
func NewHolder(m *Metrics, overrides map[string]string, pools *Pools) *Holder {
	return &Holder{metrics: m, overrides: overrides, pools: pools}
}

// Active returns the table in use, or nil.
func (h *Holder) Active() *Active { return h.active.Load() }

// LastError returns why the newest delivery or source access failed, if it did.
func (h *Holder) LastError() *string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastError
}

// Offer validates and applies a document; on error keeps the current table.
func (h *Holder) Offer(doc []byte, source string) string {
	sum := sha256.Sum256(doc)
	digest := hex.EncodeToString(sum[:])
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.active.Load()
	if cur != nil && cur.Digest == digest {
		return "unchanged"
	}
	if digest == h.lastRejected {
		return "invalid"
	}
	t, err := ParseTable(doc)
	if err != nil {
		h.lastRejected = digest
		msg := source + ": " + err.Error()
		h.lastError = &msg
		h.metrics.Reloads.add(source, "invalid", 1)
		h.metrics.TableRejected.Store(1)
		kept := "none"
		if cur != nil {
			kept = cur.Table.Version
		}
		logf(levelError, "rejected route table from %s, keeping version %s: %v", source, kept, err)
		return "invalid"
	}
	h.install(h.activate(t, digest, source), cur)
	return "applied"
}

// activate builds the serving state of a parsed table with the current overrides.
func (h *Holder) activate(t *Table, digest, source string) *Active {
	a := &Active{Table: t, Decider: NewDecider(t), Backends: ResolveBackends(t, h.effectiveOverrides()),
		Digest: digest, Source: source, AppliedAt: float64(time.Now().UnixNano()) / 1e9,
		connect: secs(t.Timeouts.ConnectSeconds), request: secs(t.Timeouts.RequestSeconds), shadowT: secs(t.Timeouts.ShadowSeconds)}
	for i, v := range t.Variants {
		a.Pools = append(a.Pools, h.pools.Get(a.Backends[i], false))
		a.Shadow = append(a.Shadow, h.pools.Get(a.Backends[i], true))
		a.Stats = append(a.Stats, h.metrics.Variant(v.Name))
	}
	return a
}

func (h *Holder) effectiveOverrides() map[string]string {
	if len(h.mapped) == 0 {
		return h.overrides
	}
	merged := make(map[string]string, len(h.mapped)+len(h.overrides))
	for k, v := range h.mapped {
		merged[k] = v
	}
	for k, v := range h.overrides {
		merged[k] = v
	}
	return merged
}

// SetMapOverrides replaces the backend map; the active table is re-resolved when a backend moved.
func (h *Holder) SetMapOverrides(m map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mapped = m
	cur := h.active.Load()
	if cur == nil {
		return
	}
	next := ResolveBackends(cur.Table, h.effectiveOverrides())
	for i := range next {
		if next[i] != cur.Backends[i] {
			h.install(h.activate(cur.Table, cur.Digest, cur.Source), cur)
			return
		}
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (h *Holder) install(a, prev *Active) {
	h.active.Store(a)
	h.lastRejected = ""
	h.lastError = nil
	m := h.metrics
	m.Reloads.add(a.Source, "applied", 1)
	m.TableRejected.Store(0)
	m.AppliedAtBits.Store(math.Float64bits(a.AppliedAt))
	m.TableInfo.clear()
	m.TableInfo.set(a.Table.Version, "", 1)
	if prev != nil {
		for _, old := range prev.Table.Variants {
			if a.Table.VariantIndex(old.Name) < 0 {
				m.Weight.remove(old.Name, "")
			}
		}
	}
	parts := make([]string, len(a.Table.Variants))
	for i, v := range a.Table.Variants {
		m.Weight.set(v.Name, "", float64(v.Weight))
		parts[i] = fmt.Sprintf("%s=%d@%s", v.Name, v.Weight, a.Backends[i])
	}
	logf(levelInfo, "route table %s applied from %s: %s", a.Table.Version, a.Source, strings.Join(parts, ", "))
}

// SourceError records that a source could not be read; the current table stays.
func (h *Holder) SourceError(source, message string) {
	h.mu.Lock()
	msg := source + ": " + message
	h.lastError = &msg
	h.mu.Unlock()
	h.metrics.Reloads.add(source, "error", 1)
	kept := "none"
	if a := h.active.Load(); a != nil {
		kept = a.Table.Version
	}
	logf(levelWarning, "route source %s failed, keeping version %s: %s", source, kept, message)
}

// View is what GET /-/routes shows.
func (h *Holder) View() map[string]any {
	a := h.active.Load()
	v := map[string]any{"version": nil, "source": nil, "applied_at": nil, "backends": map[string]string{},
		"table": nil, "last_error": h.LastError()}
	if a != nil {
		b := map[string]string{}
		for i, n := range a.Table.Variants {
			b[n.Name] = a.Backends[i]
		}
		v["version"], v["source"], v["applied_at"], v["backends"], v["table"] = a.Table.Version, a.Source, a.AppliedAt, b, a.Table
	}
	return v
}
