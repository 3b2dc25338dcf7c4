package main

import (
	"fmt"
	"strings"
	"testing"
)

func mustTable(t *testing.T, doc string) *Table {
	t.Helper()
	tb, err := ParseTable([]byte(doc))
	if err != nil {
		t.Fatalf("ParseTable: %v", err)
	}
	return tb
}

func twoArms(w1, w2 int, extra string) string {
	return fmt.Sprintf(`{"version":"v1","variants":[
		{"name":"stable","backend":"http://s.ns.svc:8080","weight":%d},
		{"name":"canary","backend":"http://c.ns.svc:8080","weight":%d},
		{"name":"int8","backend":"http://i.ns.svc:8080","weight":0}]%s}`, w1, w2, extra)
}

func TestSWRRIsExactOverEveryWindow(t *testing.T) {
	d := NewDecider(mustTable(t, twoArms(90, 10, "")))
	counts := [3]int{}
	for i := 0; i < 10_000; i++ {
		dec := d.Decide(MapHeaders{})
		counts[dec.Variant]++
		if dec.Reason != "split" {
			t.Fatalf("reason %q", dec.Reason)
		}
		if (i+1)%100 == 0 && counts[1] != (i+1)/10 {
			t.Fatalf("after %d requests canary got %d, want exactly %d", i+1, counts[1], (i+1)/10)
		}
	}
	if counts != [3]int{9000, 1000, 0} {
		t.Fatalf("counts %v", counts)
	}
	// nginx's sequence interleaves: 90/10 is exactly one canary in every window of ten.
	s := NewSWRR([]int64{90, 10})
	for w := 0; w < 50; w++ {
		c := 0
		for i := 0; i < 10; i++ {
			if s.Pick() == 1 {
				c++
			}
		}
		if c != 1 {
			t.Fatalf("window %d had %d canary picks", w, c)
		}
	}
}

func TestSWRRPrefixDeviationBounded(t *testing.T) {
	weights := []int64{5, 3, 2}
	s := NewSWRR(weights)
	got := make([]int64, 3)
	for n := int64(1); n <= 1000; n++ {
		got[s.Pick()]++
		for i, w := range weights {
			exact := float64(n*w) / 10
			if dev := float64(got[i]) - exact; dev > 2 || dev < -2 {
				t.Fatalf("after %d picks arm %d has %d, exact %.1f", n, i, got[i], exact)
			}
		}
	}
}

func TestBlake2bMatchesHashlib(t *testing.T) {
	// int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")
	cases := map[string]uint64{
		"":                       16476032584258269876,
		"a":                      4681665781835383343,
		"salt\x00user-1":         15307144766292862683,
		strings.Repeat("x", 127): 10263880225406078972,
		strings.Repeat("y", 128): 1535585607571914759,
		strings.Repeat("z", 129): 4147590808445181103,
		strings.Repeat("w", 300): 14428800346236761621,
	}
	for in, want := range cases {
		if got := blake2b64([]byte(in)); got != want {
			t.Errorf("blake2b64(%q...) = %d, want %d", in[:min(len(in), 8)], got, want)
		}
	}
	// mdserve.router.decide.sticky_point(f"user-{i}", "exp1", 100) for i in range(10)
	want := []uint64{40, 7, 46, 57, 43, 11, 67, 84, 12, 82}
	for i, w := range want {
		if got := StickyPoint(fmt.Sprintf("user-%d", i), "exp1", 100); got != w {
			t.Errorf("StickyPoint(user-%d) = %d, want %d (Python)", i, got, w)
		}
	}
}

func TestStickyKeysAreStableAndMoveOnlyForward(t *testing.T) {
	sticky := `,"sticky":{"header":"X-User-Id","salt":"exp1"}`
	d90 := NewDecider(mustTable(t, twoArms(90, 10, sticky)))
	d80 := NewDecider(mustTable(t, twoArms(80, 20, sticky)))
	seen := map[int]int{}
	for i := 0; i < 2000; i++ {
		key := fmt.Sprintf("user-%d", i)
		first := d90.Decide(MapHeaders{"x-user-id": key})
		if first.Reason != "sticky" {
			t.Fatalf("reason %q", first.Reason)
		}
		for j := 0; j < 3; j++ {
			if again := d90.Decide(MapHeaders{"x-user-id": key}); again.Variant != first.Variant {
				t.Fatalf("%s moved from %d to %d", key, first.Variant, again.Variant)
			}
		}
		after := d80.Decide(MapHeaders{"x-user-id": key})
		if first.Variant == 1 && after.Variant != 1 {
			t.Fatalf("%s moved from canary back to stable when canary's weight grew", key)
		}
		seen[first.Variant]++
	}
	if seen[0] < 1700 || seen[1] < 120 || seen[2] != 0 {
		t.Fatalf("sticky distribution %v far from 90/10", seen)
	}
	// A cookie key, and no key at all (falls back to the exact split).
	dc := NewDecider(mustTable(t, twoArms(50, 50, `,"sticky":{"cookie":"uid"}`)))
	a := dc.Decide(MapHeaders{"cookie": "x=1; uid=abc"})
	b := dc.Decide(MapHeaders{"cookie": "uid=abc"})
	if a.Variant != b.Variant || a.Reason != "sticky" {
		t.Fatalf("cookie sticky: %v %v", a, b)
	}
	if r := dc.Decide(MapHeaders{}); r.Reason != "split" {
		t.Fatalf("no key: %v", r)
	}
}

func TestRulesFirstMatchWins(t *testing.T) {
	rules := `,"rules":[
		{"name":"testers","variant":"int8","headers":[{"name":"X-Tester","value":"yes"}]},
		{"name":"ab","variant":"canary","cookies":[{"name":"ab","value":"b"}]},
		{"name":"eu","variant":"stable","headers":[{"name":"x-region","value":"eu-","type":"prefix"}],
		 "cookies":[{"name":"beta","type":"present"}]},
		{"name":"re","variant":"int8","headers":[{"name":"x-v","value":"v[0-9]+","type":"regex"}]},
		{"name":"late","variant":"stable","headers":[{"name":"x-tester","type":"present"}]}],
		"sticky":{"header":"x-user-id"}`
	d := NewDecider(mustTable(t, twoArms(0, 100, rules)))
	cases := []struct {
		h      MapHeaders
		want   int
		reason string
	}{
		{MapHeaders{"x-tester": "yes", "x-user-id": "u1"}, 2, "rule:testers"},
		{MapHeaders{"x-tester": "no"}, 0, "rule:late"},
		{MapHeaders{"cookie": "lang=en; ab=b"}, 1, "rule:ab"},
		{MapHeaders{"cookie": `ab="b"`}, 1, "rule:ab"},
		{MapHeaders{"cookie": "ab=c"}, 1, "split"},
		{MapHeaders{"x-region": "eu-west", "cookie": "beta="}, 0, "rule:eu"},
		{MapHeaders{"x-region": "eu-west"}, 1, "split"},
		{MapHeaders{"x-v": "v12"}, 2, "rule:re"},
		{MapHeaders{"x-v": "v12x"}, 1, "split"},
	}
	for _, c := range cases {
		got := d.Decide(c.h)
		if got.Variant != c.want || got.Reason != c.reason {
			t.Errorf("%v: got %d %q, want %d %q", c.h, got.Variant, got.Reason, c.want, c.reason)
		}
	}
}

func TestShadowPercentageIsExact(t *testing.T) {
	d := NewDecider(mustTable(t, twoArms(90, 10, `,"shadows":[{"variant":"int8","percent":25},{"variant":"canary","percent":12.5}]`)))
	int8, canary, canaryPrimary := 0, 0, 0
	for i := 0; i < 8000; i++ {
		dec := d.Decide(MapHeaders{})
		if dec.Variant == 1 {
			canaryPrimary++
		}
		for _, s := range dec.Shadows {
			if s == dec.Variant {
				t.Fatalf("shadow to the primary itself")
			}
			switch s {
			case 2:
				int8++
			case 1:
				canary++
			}
		}
		if (i+1)%4 == 0 && int8 != (i+1)/4 {
			t.Fatalf("after %d requests %d int8 copies, want exactly %d", i+1, int8, (i+1)/4)
		}
	}
	// Canary copies: 12.5% of the requests not already served by canary.
	if want := (8000 - canaryPrimary) / 8; canary != want {
		t.Fatalf("canary shadows %d, want %d", canary, want)
	}
}

func TestTableValidationErrors(t *testing.T) {
	v := `{"name":"a","backend":"http://a:1","weight":1}`
	cases := map[string]string{
		`not json`:                      "route table is not valid JSON",
		`[1]`:                           "route table must be a JSON object",
		`{"variants":[` + v + `]}`:      "version: Field required",
		`{"version":"x","variants":[]}`: "at least one variant is required",
		`{"version":"x","variants":[` + v + `],"extra":1}`:                                                                                "extra: Extra inputs are not permitted",
		`{"version":"x","variants":[{"name":"a","backend":"http://a:1","weight":1,"wieght":2}]}`:                                          "variants.0.wieght: Extra inputs are not permitted",
		`{"version":"x","variants":[{"name":"stable","weight":100}]}`:                                                                     "variants.0.backend: Field required",
		`{"version":"x","variants":[{"name":"a","backend":"ftp://a","weight":1}]}`:                                                        "must be an absolute http(s) URL",
		`{"version":"x","variants":[{"name":"a","backend":"http://a/p","weight":1}]}`:                                                     "must not have a path",
		`{"version":"x","variants":[{"name":"-a","backend":"http://a","weight":1}]}`:                                                      "variant name",
		`{"version":"x","variants":[{"name":"a","backend":"http://a","weight":-1}]}`:                                                      "greater than or equal to 0",
		`{"version":"x","variants":[{"name":"a","backend":"http://a","weight":1000001}]}`:                                                 "less than or equal to 1000000",
		`{"version":"x","variants":[{"name":"a","backend":"http://a","weight":1.5}]}`:                                                     "valid integer",
		`{"version":"x","variants":[{"name":"a","backend":"http://a","weight":0}]}`:                                                       "at least one variant must have a positive weight",
		`{"version":"x","variants":[` + v + `,` + v + `]}`:                                                                                "duplicate variant names",
		`{"version":"x","variants":[` + v + `],"rules":[{"name":"r","variant":"b","headers":[{"name":"h","value":"1"}]}]}`:                "names unknown variant",
		`{"version":"x","variants":[` + v + `],"rules":[{"name":"r","variant":"a"}]}`:                                                     "needs at least one header or cookie condition",
		`{"version":"x","variants":[` + v + `],"rules":[{"name":"r","variant":"a","headers":[{"name":"h","value":"(","type":"regex"}]}]}`: "bad regex",
		`{"version":"x","variants":[` + v + `],"rules":[{"name":"r","variant":"a","headers":[{"name":"h","type":"fuzzy"}]}]}`:             "type: Input should be",
		`{"version":"x","variants":[` + v + `],"sticky":{"header":"a","cookie":"b"}}`:                                                     "exactly one of 'header' or 'cookie'",
		`{"version":"x","variants":[` + v + `],"shadows":[{"variant":"a","percent":0}]}`:                                                  "greater than 0",
		`{"version":"x","variants":[` + v + `],"shadows":[{"variant":"a","percent":50},{"variant":"a","percent":5}]}`:                     "at most one shadow entry per variant",
		`{"version":"x","variants":[` + v + `],"timeouts":{"connect_seconds":0}}`:                                                         "timeouts.connect_seconds: Input should be greater than 0",
		`{"version":"x","variants":[` + v + `],"timeouts":{"request":1}}`:                                                                 "timeouts.request: Extra inputs are not permitted",
		`{"schema_version":2,"version":"x","variants":[` + v + `]}`:                                                                       "schema_version",
		`{"version":"","variants":[` + v + `]}`:                                                                                           "version must be 1-128 printable characters",
	}
	for doc, want := range cases {
		_, err := ParseTable([]byte(doc))
		if err == nil {
			t.Errorf("%s: accepted, want error containing %q", doc, want)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not contain %q", doc, err, want)
		}
	}
	// A full valid table, with defaults filled in as pydantic does.
	tb := mustTable(t, twoArms(90, 10, `,"rules":[{"name":"r","variant":"int8","headers":[{"name":"x","type":"present"}]}],
		"sticky":{"header":"x-user-id"},"shadows":[{"variant":"int8","percent":25}],"timeouts":{"request_seconds":5}}`))
	if tb.Timeouts != (Timeouts{2, 5, 10}) || tb.Rules[0].Headers[0].Value != "" || tb.Variants[1].Weight != 10 {
		t.Fatalf("parsed %+v", tb)
	}
	if tb2 := mustTable(t, `{"version":"x","variants":[{"name":"a","backend":"http://a:1/"}, {"name":"b","backend":"https://b","weight":1}]}`); tb2.Variants[0].Backend != "http://a:1" || tb2.Variants[0].Weight != 0 {
		t.Fatalf("backend not normalised: %+v", tb2.Variants)
	}
}

func TestResolveBackendsOverrides(t *testing.T) {
	tb := mustTable(t, twoArms(1, 1, ""))
	got := ResolveBackends(tb, map[string]string{"stable": "http://127.0.0.1:1/", "c.ns.svc:8080": "http://127.0.0.1:2", "i.ns.svc": "http://127.0.0.1:3"})
	want := []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v want %v", got, want)
		}
	}
}

func TestParseCookies(t *testing.T) {
	got := ParseCookies(` a=1; b="two" ;bad; =x; a=3; c=`)
	if len(got) != 3 || got["a"] != "1" || got["b"] != "two" || got["c"] != "" {
		t.Fatalf("%v", got)
	}
}
