// mdroute: the modeldeploy traffic router in Go, behaviour-compatible with `python -m mdserve router`
// (same route table, flags, environment, endpoints, metrics and error semantics).
package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	levelDebug = iota
	levelInfo
	levelWarning
	levelError
)

var (
	logLevel = levelInfo
	logMu    sync.Mutex
)

func logf(level int, format string, args ...any) {
	if level < logLevel {
		return
	}
	name := [...]string{"DEBUG", "INFO", "WARNING", "ERROR"}[level]
	now := time.Now()
	line := fmt.Sprintf("%s,%03d %s mdroute: %s\n", now.Format("2006-01-02 15:04:05"), now.Nanosecond()/1e6, name, fmt.Sprintf(format, args...))
	logMu.Lock()
	os.Stderr.WriteString(line)
	logMu.Unlock()
}

// Settings mirror mdserve/router/settings.py.
type Settings struct {
	Host, RoutesFile, Configmap, Namespace, Kubeconfig, AdminHost, AdminToken, LogLevel string
	Port, AdminPort, PoolSize, ShadowMaxInflight, FeedbackMemory                        int
	PollInterval, KeepaliveSeconds                                                      float64
	MaxBodyBytes                                                                        int64
	BackendOverrides                                                                    map[string]string
	BackendMap                                                                          string
	AccessLog                                                                           bool
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func envOr(env map[string]string, key, def string) string {
	if v, ok := env[key]; ok && v != "" {
		return v
	}
	return def
}

func parseOverrides(items []string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range items {
		for _, part := range strings.Split(item, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			k, u, ok := strings.Cut(part, "=")
			if !ok || k == "" || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
				return nil, fmt.Errorf("backend override %q must look like name=http://host:port", part)
			}
			out[k] = u
		}
	}
	return out, nil
}

// ParseSettings builds Settings from argv (without the program name) and env.
func ParseSettings(argv []string, env map[string]string) (*Settings, error) {
	if len(argv) > 0 && argv[0] == "router" { // `mdserve router ...`: the operator's container command
		argv = argv[1:]
	}
	fs := flag.NewFlagSet("mdroute", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := &Settings{}
	num := func(key, def string) string { return envOr(env, key, def) }
	var port, adminPort, poolSize, shadowMax, feedbackMemory, maxBody, poll, keepalive string
	fs.StringVar(&s.Host, "host", envOr(env, "MDROUTE_HOST", "0.0.0.0"), "listen address")
	fs.StringVar(&port, "port", num("MDROUTE_PORT", "8080"), "proxy port")
	fs.StringVar(&s.RoutesFile, "routes-file", env["MDROUTE_ROUTES_FILE"], "route table file (polled)")
	fs.StringVar(&poll, "poll-interval", num("MDROUTE_POLL_INTERVAL", "0.2"), "file poll period (s)")
	fs.StringVar(&s.Configmap, "configmap", env["MDROUTE_CONFIGMAP"], "ConfigMap to watch")
	fs.StringVar(&s.Namespace, "namespace", env["MDROUTE_NAMESPACE"], "namespace of the ConfigMap")
	kc := strings.Split(env["KUBECONFIG"], string(os.PathListSeparator))[0]
	fs.StringVar(&s.Kubeconfig, "kubeconfig", kc, "kubeconfig (else in-cluster)")
	fs.StringVar(&adminPort, "admin-port", num("MDROUTE_ADMIN_PORT", "0"), "admin API port (0: off)")
	fs.StringVar(&s.AdminHost, "admin-host", envOr(env, "MDROUTE_ADMIN_HOST", "127.0.0.1"), "admin listen address")
	var tokenFile string
	fs.StringVar(&tokenFile, "admin-token-file", "", "file with the admin bearer token")
	var overrides listFlag
	fs.Var(&overrides, "backend-override", "NAME=URL (repeatable)")
	fs.StringVar(&s.BackendMap, "backend-map", env["MDROUTE_BACKEND_MAP"], "JSON file host -> [addresses], re-read when it changes")
	fs.StringVar(&poolSize, "pool-size", num("MDROUTE_POOL_SIZE", "256"), "max connections in use per backend")
	fs.StringVar(&keepalive, "keepalive-seconds", num("MDROUTE_KEEPALIVE_SECONDS", "4"), "idle upstream connection lifetime")
	fs.StringVar(&maxBody, "max-body-bytes", num("MDROUTE_MAX_BODY_BYTES", strconv.Itoa(64<<20)), "largest request body")
	fs.StringVar(&shadowMax, "shadow-max-inflight", num("MDROUTE_SHADOW_MAX_INFLIGHT", "256"), "shadow copies in flight per variant")
	fs.StringVar(&feedbackMemory, "feedback-memory", num("MDROUTE_FEEDBACK_MEMORY", "100000"), "request ids whose variant is remembered for feedback (0: off)")
	al := strings.ToLower(env["MDROUTE_ACCESS_LOG"])
	fs.BoolVar(&s.AccessLog, "access-log", al == "1" || al == "true" || al == "yes", "log every request")
	fs.StringVar(&s.LogLevel, "log-level", envOr(env, "MDROUTE_LOG_LEVEL", "INFO"), "log level")
	if err := fs.Parse(argv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	ints := []struct {
		name string
		raw  string
		dst  *int
	}{{"--port", port, &s.Port}, {"--admin-port", adminPort, &s.AdminPort}, {"--pool-size", poolSize, &s.PoolSize}, {"--shadow-max-inflight", shadowMax, &s.ShadowMaxInflight}, {"--feedback-memory", feedbackMemory, &s.FeedbackMemory}}
	for _, f := range ints {
		if *f.dst, err = strconv.Atoi(f.raw); err != nil {
			return nil, fmt.Errorf("%s: invalid int value %q", f.name, f.raw)
		}
	}
	if s.MaxBodyBytes, err = strconv.ParseInt(maxBody, 10, 64); err != nil {
		return nil, fmt.Errorf("--max-body-bytes: invalid int value %q", maxBody)
	}
	if s.PollInterval, err = strconv.ParseFloat(poll, 64); err != nil {
		return nil, fmt.Errorf("--poll-interval: invalid float value %q", poll)
	}
	if s.KeepaliveSeconds, err = strconv.ParseFloat(keepalive, 64); err != nil {
		return nil, fmt.Errorf("--keepalive-seconds: invalid float value %q", keepalive)
	}
	s.AdminToken = env["MDROUTE_ADMIN_TOKEN"]
	if tokenFile != "" {
		raw, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, err
		}
		s.AdminToken = strings.TrimSpace(string(raw))
	}
	if s.BackendOverrides, err = parseOverrides(append([]string{env["MDROUTE_BACKEND_OVERRIDES"]}, overrides...)); err != nil {
		return nil, err
	}
	s.LogLevel = strings.ToUpper(s.LogLevel)
	switch {
	case s.RoutesFile != "" && s.Configmap != "":
		return nil, errors.New("give either --routes-file or --configmap (MDROUTE_CONFIGMAP), not both")
	case s.RoutesFile == "" && s.Configmap == "" && s.AdminPort == 0:
		return nil, errors.New("no route source: give --routes-file, --configmap or --admin-port")
	case s.AdminPort != 0 && s.AdminToken == "":
		return nil, errors.New("the admin API needs a token: set MDROUTE_ADMIN_TOKEN or --admin-token-file")
	case s.PollInterval < 0.01 || s.PollInterval > 60:
		return nil, errors.New("--poll-interval must be between 0.01 and 60 seconds")
	case s.PoolSize < 1 || s.ShadowMaxInflight < 0 || s.MaxBodyBytes < 1:
		return nil, errors.New("--pool-size, --max-body-bytes must be positive, --shadow-max-inflight >= 0")
	case s.FeedbackMemory < 0 || s.FeedbackMemory > 100_000_000:
		return nil, errors.New("--feedback-memory must be between 0 and 100000000 request ids")
	}
	for _, p := range []int{s.Port, s.AdminPort} {
		if p < 0 || p > 65535 {
			return nil, fmt.Errorf("port %d out of range", p)
		}
	}
	switch s.LogLevel {
	case "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL":
	default:
		return nil, fmt.Errorf("--log-level: unknown level %q", s.LogLevel)
	}
	return s, nil
}

// fileSource polls a routes file and offers it whenever its bytes change.
func fileSource(h *Holder, path string, interval time.Duration, stop <-chan struct{}) {
	var seen [32]byte
	failing := ""
	first := true
	for {
		data, err := os.ReadFile(path)
		if err != nil {
			msg := fmt.Sprintf("cannot read %s: %v", path, unwrapPathError(err))
			if msg != failing {
				failing = msg
				h.SourceError("file", msg)
			}
		} else {
			failing = ""
			sum := sha256.Sum256(data)
			if first || sum != seen {
				seen, first = sum, false
				h.Offer(data, "file")
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
	}
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func adminHandler(h *Holder, token string) http.Handler {
	expected := []byte("Bearer " + token)
	reply := func(w http.ResponseWriter, status int, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/-/routes" {
			reply(w, 404, []byte(`{"error": "not found"}`))
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), expected) != 1 {
			reply(w, 401, []byte(`{"error": "missing or wrong bearer token"}`))
			return
		}
		switch r.Method {
		case http.MethodGet:
			reply(w, 200, mustJSON(h.View()))
		case http.MethodPut:
			doc, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
			if err != nil {
				reply(w, 400, []byte(`{"error": "cannot read body"}`))
				return
			}
			outcome := h.Offer(doc, "admin")
			if outcome == "invalid" {
				reply(w, 422, mustJSON(map[string]any{"error": h.LastError(), "outcome": outcome}))
				return
			}
			var version any
			if a := h.Active(); a != nil {
				version = a.Table.Version
			}
			reply(w, 200, mustJSON(map[string]any{"outcome": outcome, "version": version}))
		default:
			reply(w, 405, []byte(`{"error": "method not allowed"}`))
		}
	})
}

func run(argv []string) int {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	s, err := ParseSettings(argv, env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mdroute: %v\n", err)
		return 2
	}
	logLevel = map[string]int{"DEBUG": levelDebug, "INFO": levelInfo, "WARNING": levelWarning, "WARN": levelWarning, "ERROR": levelError, "CRITICAL": levelError}[s.LogLevel]
	metrics := NewMetrics()
	shadowLimit := s.ShadowMaxInflight
	if shadowLimit > s.PoolSize {
		shadowLimit = s.PoolSize
	}
	if shadowLimit < 1 {
		shadowLimit = 1
	}
	pools := NewPools(s.PoolSize, shadowLimit, secs(s.KeepaliveSeconds))
	holder := NewHolder(metrics, s.BackendOverrides, pools)
	srv := &Server{holder: holder, metrics: metrics, pools: pools, maxBody: s.MaxBodyBytes,
		shadowMax: int64(s.ShadowMaxInflight), accessLog: s.AccessLog, conns: map[*clientConn]struct{}{},
		memory: NewFeedbackMemory(s.FeedbackMemory)}
	stop := make(chan struct{})
	var sources sync.WaitGroup
	if s.RoutesFile != "" {
		path, _ := filepath.Abs(s.RoutesFile)
		if data, err := os.ReadFile(path); err == nil { // serve with the file's table from the first request on
			holder.Offer(data, "file")
		}
		sources.Add(1)
		go func() { defer sources.Done(); fileSource(holder, path, secs(s.PollInterval), stop) }()
	}
	if s.BackendMap != "" {
		if doc, err := os.ReadFile(s.BackendMap); err == nil { // resolved before the first table arrives
			if m, err := parseBackendMap(doc); err == nil {
				holder.SetMapOverrides(m)
			}
		}
		go backendMapSource(holder, s.BackendMap, 200*time.Millisecond, stop)
	}
	if s.Configmap != "" {
		w := &ConfigMapSource{holder: holder, kubeconfig: s.Kubeconfig, env: env, name: s.Configmap,
			namespace: s.Namespace, watchSeconds: 60, minBackoff: 200 * time.Millisecond, maxBackoff: 5 * time.Second}
		go w.Run(stop)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	if err != nil {
		logf(levelError, "router failed: %v", err)
		return 1
	}
	logf(levelInfo, "router listening on %s:%d", s.Host, s.Port)
	var admin *http.Server
	if s.AdminPort != 0 {
		aln, err := net.Listen("tcp", net.JoinHostPort(s.AdminHost, strconv.Itoa(s.AdminPort)))
		if err != nil {
			logf(levelError, "router failed: %v", err)
			return 1
		}
		admin = &http.Server{Handler: adminHandler(holder, s.AdminToken), ReadHeaderTimeout: 10 * time.Second}
		go admin.Serve(aln)
		logf(levelInfo, "admin API listening on %s:%d", s.AdminHost, s.AdminPort)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	srv.listener = ln // set before Serve runs: Shutdown closes it from another goroutine
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-sig:
	case err := <-served:
		logf(levelError, "router failed: %v", err)
		return 1
	}
	logf(levelInfo, "stopping: finishing in-flight requests")
	close(stop)
	if admin != nil {
		admin.Close()
	}
	srv.Shutdown(10 * time.Second)
	return 0
}

func main() { os.Exit(run(os.Args[1:])) }
