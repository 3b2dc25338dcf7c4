// Feedback affinity, the pure parts (mirror of mdserve/router/feedback.py): which variant served a
// request id, and how a feedback request is split by variant and its answers merged back.
//
// The model server scores feedback only for request ids it predicted itself, and the canary
// analysis reads each revision's accuracy from those scores: feedback sent to the router must reach
// the variant that made the prediction, not whichever one the split picks next.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// FeedbackMemory is the variant that answered each of the last capacity distinct request ids.
// First-in-first-out over a ring: remembering a known id again updates its variant in place, so
// the bound is on distinct ids and every operation is O(1). Capacity 0 remembers nothing.
type FeedbackMemory struct {
	capacity int
	mu       sync.Mutex
	ids      map[string]string
	ring     []string // ids in arrival order; grows to capacity, then the oldest slot is reused
	next     int      // the oldest slot once the ring is full
}

// NewFeedbackMemory makes an empty memory of capacity request ids.
func NewFeedbackMemory(capacity int) *FeedbackMemory {
	return &FeedbackMemory{capacity: capacity, ids: map[string]string{}}
}

// Remember records that variant answered request id.
func (m *FeedbackMemory) Remember(id []byte, variant string) {
	if m.capacity == 0 {
		return
	}
	key := string(id) // copied outside the lock; id points into a reused buffer
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ids[key]; ok {
		m.ids[key] = variant
		return
	}
	if len(m.ring) < m.capacity {
		m.ring = append(m.ring, key)
	} else {
		delete(m.ids, m.ring[m.next])
		m.ring[m.next] = key
		m.next = (m.next + 1) % m.capacity
	}
	m.ids[key] = variant
}

// VariantOf is the variant remembered for request id, if any.
func (m *FeedbackMemory) VariantOf(id string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.ids[id]
	return v, ok
}

// Len is the number of request ids remembered.
func (m *FeedbackMemory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids)
}

func pathOf(target []byte) []byte {
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		return target[:i]
	}
	return target
}

// isInference: a prediction whose request id the model server keeps for feedback (V2 infer, V1 predict).
func isInference(method, target []byte) bool {
	if string(method) != "POST" {
		return false
	}
	p := pathOf(target)
	return bytes.HasSuffix(p, []byte("/infer")) || bytes.HasSuffix(p, []byte(":predict"))
}

// isFeedback: POST /v1/models/{name}[/versions/{v}]:feedback or POST /v2/models/{name}[...]/feedback.
func isFeedback(method, target []byte) bool {
	if string(method) != "POST" {
		return false
	}
	p := pathOf(target)
	if bytes.HasPrefix(p, []byte("/v1/models/")) {
		return bytes.HasSuffix(p, []byte(":feedback"))
	}
	return bytes.HasPrefix(p, []byte("/v2/models/")) && bytes.HasSuffix(p, []byte("/feedback"))
}

// feedbackBody is a well-formed feedback request: its items (exact bytes) and request ids, in order.
type feedbackBody struct {
	items []json.RawMessage
	ids   []string
}

// parseFeedback returns the items of a feedback body, or nil when the model server would refuse
// it structurally (then it is forwarded whole and the server's 400 says what is wrong). It checks
// what the server checks, so a split never sends one valid and one invalid part: an invalid
// request must count nothing, on every variant.
func parseFeedback(body []byte) *feedbackBody {
	var raw []json.RawMessage
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if json.Unmarshal(body, &raw) != nil || len(raw) == 0 {
			return nil
		}
	} else {
		var one json.RawMessage
		if json.Unmarshal(body, &one) != nil {
			return nil
		}
		raw = []json.RawMessage{one}
	}
	fb := &feedbackBody{items: raw, ids: make([]string, 0, len(raw))}
	for _, item := range raw {
		var fields map[string]json.RawMessage // exact key names, unlike decoding into a struct
		if json.Unmarshal(item, &fields) != nil || fields == nil {
			return nil
		}
		var id string
		if r, ok := fields["request_id"]; !ok || json.Unmarshal(r, &id) != nil || id == "" {
			return nil
		}
		if t, ok := fields["truth"]; !ok || string(bytes.TrimSpace(t)) == "null" {
			return nil
		}
		fb.ids = append(fb.ids, id)
	}
	return fb
}

// feedbackPart is the items of a feedback request that go to one variant.
type feedbackPart struct {
	variant    int
	indices    []int // positions in the original request, ascending
	remembered int   // how many were routed by the memory (the rest by the fallback decision)
}

// planFeedback groups items by variant: ids known maps (>= 0) go to their variant, the others to
// the variant of one fallback decision, taken only if some id is unknown (it advances the split).
// Parts are ordered by their first item.
func planFeedback(ids []string, known func(string) int, fallback func() int) []feedbackPart {
	remembered := make([]int, len(ids))
	needFallback := false
	for i, id := range ids {
		remembered[i] = known(id)
		needFallback = needFallback || remembered[i] < 0
	}
	fb := -1
	if needFallback {
		fb = fallback()
	}
	var parts []feedbackPart
	where := map[int]int{} // variant -> index in parts
	for i, v := range remembered {
		target := v
		if v < 0 {
			target = fb
		}
		p, ok := where[target]
		if !ok {
			p = len(parts)
			where[target] = p
			parts = append(parts, feedbackPart{variant: target})
		}
		parts[p].indices = append(parts[p].indices, i)
		if v >= 0 {
			parts[p].remembered++
		}
	}
	return parts
}

// partBody is the request body for one part: always a list, so an unknown id comes back as
// "status": "unknown" in the results rather than as a 404 for the whole part.
func partBody(fb *feedbackBody, p *feedbackPart) []byte {
	out := []byte{'['}
	for n, i := range p.indices {
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, fb.items[i]...)
	}
	return append(out, ']')
}

// mergeFeedback makes one {"results": [...]} in the original item order from the parts' 200
// answers; the error names the variant whose answer is not the model server's shape.
func mergeFeedback(count int, parts []feedbackPart, names []string, bodies [][]byte) ([]byte, error) {
	results := make([]json.RawMessage, count)
	for k := range parts {
		var doc map[string]json.RawMessage
		var got []json.RawMessage
		ok := json.Unmarshal(bodies[k], &doc) == nil && doc != nil
		if ok {
			r, present := doc["results"]
			ok = present && json.Unmarshal(r, &got) == nil && got != nil
		}
		if !ok || len(got) != len(parts[k].indices) {
			return nil, fmt.Errorf("variant %s answered feedback without a 'results' list of %d items", names[k], len(parts[k].indices))
		}
		for j, i := range parts[k].indices {
			results[i] = got[j]
		}
	}
	out := []byte(`{"results":[`)
	for i, r := range results {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r...)
	}
	return append(out, "]}"...), nil
}
