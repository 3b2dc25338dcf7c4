package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKubeconfigYAML(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("not a cert"), 0o600)
	doc := `apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://other:1
- name: local
  cluster:
    server: "https://127.0.0.1:6443/"
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: abc # a comment
contexts:
- context:
    cluster: local
    user: admin
    namespace: team-a
  name: ctx
current-context: ctx
preferences: {}
`
	path := filepath.Join(dir, "kubeconfig")
	os.WriteFile(path, []byte(doc), 0o600)
	k, err := FromKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if k.Server != "https://127.0.0.1:6443" || k.Token != "abc" || k.Namespace != "team-a" || !k.TLS.InsecureSkipVerify {
		t.Fatalf("%+v", k)
	}
	if h, _ := k.authHeader(); h != "Bearer abc" {
		t.Fatalf("auth %q", h)
	}
	os.WriteFile(path, []byte(strings.Replace(doc, "token: abc # a comment", "exec:\n      command: x", 1)), 0o600)
	if _, err := FromKubeconfig(path); err == nil || !strings.Contains(err.Error(), "exec") {
		t.Fatalf("exec plugin accepted: %v", err)
	}
}

func TestSettings(t *testing.T) {
	env := map[string]string{"MDROUTE_PORT": "9000", "MDROUTE_BACKEND_OVERRIDES": "a=http://127.0.0.1:1, b:80=http://127.0.0.1:2", "MDROUTE_CONFIGMAP": "demo-routes"}
	s, err := ParseSettings([]string{"router", "--backend-override", "c=https://x", "--log-level", "debug"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != 9000 || s.Configmap != "demo-routes" || len(s.BackendOverrides) != 3 || s.LogLevel != "DEBUG" || s.Host != "0.0.0.0" {
		t.Fatalf("%+v", s)
	}
	for _, bad := range [][]string{{}, {"--routes-file", "x", "--configmap", "y"}, {"--routes-file", "x", "--backend-override", "nourl"}, {"--routes-file", "x", "--port", "99999"}, {"--admin-port", "1"}} {
		if _, err := ParseSettings(bad, map[string]string{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	v := m.Variant("stable")
	v.Observe(200, 0.0004)
	v.Observe(200, 0.003)
	v.Observe(504, 40)
	m.UpstreamErrors.add("stable", "timeout", 1)
	m.Weight.set("stable", "", 90)
	m.TableInfo.set(`v"1`, "", 1)
	text := string(m.Exposition())
	for _, want := range []string{
		`mdroute_requests_total{variant="stable",code="200"} 2.0`,
		`mdroute_requests_total{variant="stable",code="504"} 1.0`,
		`mdroute_request_duration_seconds_bucket{variant="stable",le="0.0005"} 1.0`,
		`mdroute_request_duration_seconds_bucket{variant="stable",le="0.005"} 2.0`,
		`mdroute_request_duration_seconds_bucket{variant="stable",le="+Inf"} 3.0`,
		`mdroute_request_duration_seconds_count{variant="stable"} 3.0`,
		`mdroute_upstream_errors_total{variant="stable",kind="timeout"} 1.0`,
		`mdroute_weight{variant="stable"} 90.0`,
		`mdroute_table_info{version="v\"1"} 1.0`,
		"mdroute_table_rejected 0.0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

func TestBackendMapMovesBackendsWithoutANewTable(t *testing.T) {
	h := NewHolder(NewMetrics(), map[string]string{"pinned.ns.svc:80": "http://127.0.0.1:1"}, NewPools(4, 4, time.Second))
	doc := []byte(`{"version":"v1","variants":[{"name":"a","backend":"http://a.ns.svc:80","weight":1},` +
		`{"name":"b","backend":"http://pinned.ns.svc:80","weight":1}]}`)
	if got := h.Offer(doc, "file"); got != "applied" {
		t.Fatalf("offer: %s", got)
	}
	if b := h.Active().Backends[0]; b != "http://a.ns.svc:80" {
		t.Fatalf("unmapped backend changed: %s", b)
	}
	m, err := parseBackendMap([]byte(`{"a.ns.svc:80": ["127.0.0.1:7001", "127.0.0.1:7002"], "pinned.ns.svc:80": ["127.0.0.1:9"], "gone.ns.svc:80": []}`))
	if err != nil {
		t.Fatal(err)
	}
	h.SetMapOverrides(m)
	a := h.Active()
	if a.Backends[0] != "http://127.0.0.1:7001" || a.Backends[1] != "http://127.0.0.1:1" {
		t.Fatalf("backends after the map: %v (static overrides must win)", a.Backends)
	}
	if a.Table.Version != "v1" {
		t.Fatalf("the table itself must not change: %s", a.Table.Version)
	}
	h.SetMapOverrides(m) // the same map: nothing re-installed
	if h.Active() != a {
		t.Fatal("an unchanged map re-installed the table")
	}
	if _, err := parseBackendMap([]byte(`{"x": "not a list"}`)); err == nil {
		t.Fatal("a malformed map must be refused")
	}
}
