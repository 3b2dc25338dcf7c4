package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestFeedbackMemoryIsBoundedFirstInFirstOut(t *testing.T) {
	m := NewFeedbackMemory(3)
	for _, id := range []string{"r0", "r1", "r2"} {
		m.Remember([]byte(id), "stable")
	}
	m.Remember([]byte("r0"), "canary") // known id: updated in place, nothing evicted, order kept
	if v, _ := m.VariantOf("r0"); v != "canary" || m.Len() != 3 {
		t.Fatalf("r0=%q len=%d", v, m.Len())
	}
	m.Remember([]byte("r3"), "canary") // full: the oldest distinct id goes
	if _, ok := m.VariantOf("r0"); ok {
		t.Fatal("r0 should have been evicted")
	}
	for i := 0; i < 100; i++ {
		m.Remember([]byte("x"+string(rune('A'+i%26))+string(rune('a'+i/26))), "stable")
	}
	if m.Len() != 3 || len(m.ring) != 3 {
		t.Fatalf("len=%d ring=%d, want 3", m.Len(), len(m.ring))
	}
	off := NewFeedbackMemory(0)
	off.Remember([]byte("r"), "stable")
	if _, ok := off.VariantOf("r"); ok || off.Len() != 0 {
		t.Fatal("capacity 0 must remember nothing")
	}
}

func TestFeedbackMemoryCopiesTheID(t *testing.T) {
	m := NewFeedbackMemory(2)
	buf := []byte("abc")
	m.Remember(buf, "stable")
	copy(buf, "xyz") // the proxy reuses its request-id buffer
	if v, ok := m.VariantOf("abc"); !ok || v != "stable" {
		t.Fatalf("got %q %v", v, ok)
	}
}

func TestFeedbackPaths(t *testing.T) {
	cases := []struct {
		method, target      string
		inference, feedback bool
	}{
		{"POST", "/v2/models/iris/infer", true, false},
		{"POST", "/v2/models/iris/versions/2/infer?x=1", true, false},
		{"POST", "/v1/models/iris:predict", true, false},
		{"GET", "/v2/models/iris/infer", false, false},
		{"POST", "/v1/models/iris:feedback", false, true},
		{"POST", "/v1/models/iris/versions/3:feedback?trace=1", false, true},
		{"POST", "/v2/models/iris/feedback", false, true},
		{"POST", "/v2/models/iris/versions/3/feedback", false, true},
		{"GET", "/v1/models/iris:feedback", false, false},
		{"POST", "/feedback", false, false},
		{"POST", "/v3/models/iris:feedback", false, false},
	}
	for _, c := range cases {
		m, tg := []byte(c.method), []byte(c.target)
		if isInference(m, tg) != c.inference || isFeedback(m, tg) != c.feedback {
			t.Errorf("%s %s: inference=%v feedback=%v", c.method, c.target, isInference(m, tg), isFeedback(m, tg))
		}
	}
}

func TestParseFeedback(t *testing.T) {
	one := parseFeedback([]byte(`{"request_id": "a", "truth": 1}`))
	if one == nil || !reflect.DeepEqual(one.ids, []string{"a"}) {
		t.Fatalf("single: %+v", one)
	}
	many := parseFeedback([]byte(` [{"request_id": "a", "truth": [1, 2]}, {"request_id": "b", "truth": 0}]`))
	if many == nil || !reflect.DeepEqual(many.ids, []string{"a", "b"}) || string(many.items[0]) != `{"request_id": "a", "truth": [1, 2]}` {
		t.Fatalf("list: %+v", many)
	}
	for _, bad := range []string{
		`not json`, `[]`, `"a"`, `[1]`, `null`, `{"truth": 1}`, `{"request_id": "", "truth": 1}`,
		`{"request_id": 7, "truth": 1}`, `{"request_id": null, "truth": 1}`, `{"request_id": "a"}`,
		`{"request_id": "a", "truth": null}`, `{"REQUEST_ID": "a", "truth": 1}`,
		`[{"request_id": "a", "truth": 1}, {"request_id": "b"}]`,
	} {
		if fb := parseFeedback([]byte(bad)); fb != nil {
			t.Errorf("%s: accepted as %+v", bad, fb)
		}
	}
}

func TestPlanFeedback(t *testing.T) {
	memory := map[string]int{"a": 1, "b": 0, "c": 1}
	known := func(id string) int {
		if v, ok := memory[id]; ok {
			return v
		}
		return -1
	}
	calls := 0
	fallback := func() int { calls++; return 0 }
	parts := planFeedback([]string{"a", "b", "new", "c", "new2"}, known, fallback)
	want := []feedbackPart{{variant: 1, indices: []int{0, 3}, remembered: 2}, {variant: 0, indices: []int{1, 2, 4}, remembered: 1}}
	if calls != 1 || !reflect.DeepEqual(parts, want) {
		t.Fatalf("calls=%d parts=%+v", calls, parts)
	}
	if parts := planFeedback([]string{"a", "c"}, known, fallback); calls != 1 || len(parts) != 1 || parts[0].remembered != 2 {
		t.Fatalf("all known: calls=%d parts=%+v", calls, parts)
	}
}

func TestPartsAndMerge(t *testing.T) {
	fb := parseFeedback([]byte(`[{"request_id":"a","truth":0},{"request_id":"b","truth":1},{"request_id":"c","truth":2}]`))
	parts := []feedbackPart{{variant: 1, indices: []int{0, 2}}, {variant: 0, indices: []int{1}}}
	if got := string(partBody(fb, &parts[1])); got != `[{"request_id":"b","truth":1}]` {
		t.Fatalf("part body %s", got)
	}
	bodies := [][]byte{
		[]byte(`{"results":[{"request_id":"a","status":"scored"},{"request_id":"c","status":"unknown"}]}`),
		[]byte(`{"results": [{"request_id":"b","status":"scored"}]}`),
	}
	merged, err := mergeFeedback(3, parts, []string{"canary", "stable"}, bodies)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []struct {
			RequestID string `json:"request_id"`
			Status    string `json:"status"`
		} `json:"results"`
	}
	if err := json.Unmarshal(merged, &doc); err != nil {
		t.Fatalf("%v: %s", err, merged)
	}
	got := []string{}
	for _, r := range doc.Results {
		got = append(got, r.RequestID+"="+r.Status)
	}
	if strings.Join(got, " ") != "a=scored b=scored c=unknown" {
		t.Fatalf("merged %s", merged)
	}
	for _, bad := range []string{`oops`, `{"results": null}`, `{"results": [{}]}`, `[]`} {
		_, err := mergeFeedback(2, parts[:1], []string{"canary"}, [][]byte{[]byte(bad)})
		if err == nil || err.Error() != "variant canary answered feedback without a 'results' list of 2 items" {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestRuleVariantLeavesTheSplitAlone(t *testing.T) {
	doc := `{"version":"v","variants":[{"name":"stable","backend":"http://s:1","weight":1},{"name":"canary","backend":"http://c:1","weight":1}],
	"rules":[{"name":"t","variant":"canary","cookies":[{"name":"ab","value":"b"}]}]}`
	tb, err := ParseTable([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d, ref := NewDecider(tb), NewDecider(tb)
	if d.RuleVariant(MapHeaders{"cookie": "ab=b"}) != 1 || d.RuleVariant(MapHeaders{}) != -1 {
		t.Fatal("rule variant")
	}
	for i := 0; i < 4; i++ {
		if a, b := d.Decide(MapHeaders{}).Variant, ref.Decide(MapHeaders{}).Variant; a != b {
			t.Fatalf("request %d: %d != %d", i, a, b)
		}
	}
}

func TestReadBodyLimited(t *testing.T) {
	read := func(raw string, h respHead, limit int64) (string, bool, error) {
		body, reuse, err := readBodyLimited(bufio.NewReader(strings.NewReader(raw)), &h, limit)
		return string(body), reuse, err
	}
	if b, reuse, err := read("5\r\nhello\r\n0\r\n\r\n", respHead{status: 200, chunked: true, contentLength: -1}, 10); b != "hello" || !reuse || err != nil {
		t.Fatalf("chunked: %q %v %v", b, reuse, err)
	}
	if b, reuse, err := read("hello", respHead{status: 200, contentLength: 5}, 10); b != "hello" || !reuse || err != nil {
		t.Fatalf("sized: %q %v %v", b, reuse, err)
	}
	if b, reuse, err := read("hello", respHead{status: 200, contentLength: -1}, 10); b != "hello" || reuse || err != nil {
		t.Fatalf("close-delimited: %q %v %v", b, reuse, err)
	}
	for _, h := range []respHead{{status: 200, contentLength: 5}, {status: 200, chunked: true, contentLength: -1}, {status: 200, contentLength: -1}} {
		if _, _, err := read("5\r\nhello\r\n0\r\n\r\n", h, 4); !errors.Is(err, errTooLarge) {
			t.Errorf("%+v: want errTooLarge, got %v", h, err)
		}
	}
}

func TestFeedbackMemorySetting(t *testing.T) {
	base := []string{"--routes-file", "r.json"}
	s, err := ParseSettings(base, map[string]string{})
	if err != nil || s.FeedbackMemory != 100000 {
		t.Fatalf("default: %v %v", s, err)
	}
	s, err = ParseSettings(base, map[string]string{"MDROUTE_FEEDBACK_MEMORY": "0"})
	if err != nil || s.FeedbackMemory != 0 {
		t.Fatalf("env: %v %v", s, err)
	}
	if _, err := ParseSettings(append(base, "--feedback-memory", "-1"), map[string]string{}); err == nil || !strings.Contains(err.Error(), "--feedback-memory") {
		t.Fatalf("negative: %v", err)
	}
}
