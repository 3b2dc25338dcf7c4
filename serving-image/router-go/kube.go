// Route table source in a cluster: list + watch one ConfigMap through the Kubernetes API, with the
// in-cluster ServiceAccount or a kubeconfig (a minimal YAML reader: kubeconfigs are simple documents).
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// KubeAccess is how to reach the API server.
type KubeAccess struct {
	Server    string
	TLS       *tls.Config
	Token     string
	TokenFile string
	Basic     [2]string
	Namespace string
}

func (k *KubeAccess) authHeader() (string, error) {
	token := k.Token
	if k.TokenFile != "" { // re-read on every (re)connect: projected tokens rotate
		raw, err := os.ReadFile(k.TokenFile)
		if err != nil {
			return "", err
		}
		token = strings.TrimSpace(string(raw))
	}
	if token != "" {
		return "Bearer " + token, nil
	}
	if k.Basic[0] != "" {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(k.Basic[0]+":"+k.Basic[1])), nil
	}
	return "", nil
}

func inCluster(env map[string]string) (*KubeAccess, error) {
	host, port := env["KUBERNETES_SERVICE_HOST"], envOr(env, "KUBERNETES_SERVICE_PORT", "443")
	if host == "" {
		return nil, errors.New("not in a cluster (KUBERNETES_SERVICE_HOST unset) and no --kubeconfig given")
	}
	token := filepath.Join(saDir, "token")
	if _, err := os.Stat(token); err != nil {
		return nil, fmt.Errorf("no ServiceAccount token at %s: is automountServiceAccountToken off?", token)
	}
	ca, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	ns, _ := os.ReadFile(filepath.Join(saDir, "namespace"))
	return &KubeAccess{Server: "https://" + host + ":" + port, TLS: &tls.Config{RootCAs: pool}, TokenFile: token,
		Namespace: strings.TrimSpace(string(ns))}, nil
}

// --- minimal YAML (block maps, block lists of maps, plain/quoted scalars, {} and []) ---

type yline struct {
	indent int
	text   string
}

func yamlLines(src string) []yline {
	var out []yline
	for _, raw := range strings.Split(src, "\n") {
		raw = strings.TrimRight(raw, " \t\r")
		t := strings.TrimLeft(raw, " ")
		if t == "" || strings.HasPrefix(t, "#") || t == "---" {
			continue
		}
		out = append(out, yline{len(raw) - len(t), t})
	}
	return out
}

func yamlScalar(s string) any {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " #"); i >= 0 && !strings.HasPrefix(s, "\"") && !strings.HasPrefix(s, "'") {
		s = strings.TrimSpace(s[:i])
	}
	switch {
	case s == "{}":
		return map[string]any{}
	case s == "[]":
		return []any{}
	case s == "" || s == "~" || s == "null":
		return nil
	case len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"':
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return s[1 : len(s)-1]
	case len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'':
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	case s == "true":
		return true
	case s == "false":
		return false
	}
	return s
}

func splitKey(t string) (string, string, bool) {
	if strings.HasSuffix(t, ":") {
		return strings.Trim(t[:len(t)-1], `"'`), "", true
	}
	i := strings.Index(t, ": ")
	if i < 0 {
		return "", "", false
	}
	return strings.Trim(t[:i], `"'`), t[i+2:], true
}

func yamlBlock(ls []yline, i, indent int) (any, int) {
	if i >= len(ls) {
		return nil, i
	}
	if ls[i].text == "-" || strings.HasPrefix(ls[i].text, "- ") {
		var list []any
		for i < len(ls) && ls[i].indent == indent && (ls[i].text == "-" || strings.HasPrefix(ls[i].text, "- ")) {
			rest := strings.TrimSpace(strings.TrimPrefix(ls[i].text, "-"))
			if rest == "" {
				if i+1 < len(ls) && ls[i+1].indent > indent {
					var v any
					v, i = yamlBlock(ls, i+1, ls[i+1].indent)
					list = append(list, v)
				} else {
					list = append(list, nil)
					i++
				}
				continue
			}
			if _, _, isMap := splitKey(rest); isMap {
				inner := indent + len(ls[i].text) - len(rest)
				ls[i] = yline{inner, rest}
				var v any
				v, i = yamlBlock(ls, i, inner)
				list = append(list, v)
				continue
			}
			list = append(list, yamlScalar(rest))
			i++
		}
		return list, i
	}
	m := map[string]any{}
	for i < len(ls) && ls[i].indent == indent {
		key, rest, ok := splitKey(ls[i].text)
		if !ok {
			return m, i + 1
		}
		i++
		if strings.TrimSpace(rest) != "" {
			m[key] = yamlScalar(rest)
			continue
		}
		if i < len(ls) && (ls[i].indent > indent || (ls[i].indent == indent && strings.HasPrefix(ls[i].text, "- "))) {
			m[key], i = yamlBlock(ls, i, ls[i].indent)
		} else {
			m[key] = nil
		}
	}
	return m, i
}

// ParseYAML reads the small YAML subset kubeconfigs use (JSON documents are accepted too).
func ParseYAML(src string) (map[string]any, error) {
	var doc map[string]any
	if json.Unmarshal([]byte(src), &doc) == nil {
		return doc, nil
	}
	ls := yamlLines(src)
	if len(ls) == 0 {
		return nil, errors.New("empty document")
	}
	v, _ := yamlBlock(ls, 0, ls[0].indent)
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a mapping")
	}
	return m, nil
}

func named(items any, name, kind string) (map[string]any, error) {
	list, _ := items.([]any)
	for _, it := range list {
		m, _ := it.(map[string]any)
		if m != nil && m["name"] == name {
			body, _ := m[kind].(map[string]any)
			if body == nil {
				body = map[string]any{}
			}
			return body, nil
		}
	}
	return nil, fmt.Errorf("kubeconfig has no %s named %q", kind, name)
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func pemOf(section map[string]any, key, base string) ([]byte, error) {
	if d := str(section, key+"-data"); d != "" {
		return base64.StdEncoding.DecodeString(d)
	}
	if p := str(section, key); p != "" {
		if strings.HasPrefix(p, "~/") {
			home, _ := os.UserHomeDir()
			p = filepath.Join(home, p[2:])
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		return os.ReadFile(p)
	}
	return nil, nil
}

// FromKubeconfig reads the current context of a kubeconfig file.
func FromKubeconfig(path string) (*KubeAccess, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read kubeconfig %s: %v", path, err)
	}
	doc, err := ParseYAML(string(raw))
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %v", path, err)
	}
	base := filepath.Dir(path)
	ctxName := str(doc, "current-context")
	if ctxName == "" {
		return nil, errors.New("kubeconfig has no current-context")
	}
	ctx, err := named(doc["contexts"], ctxName, "context")
	if err != nil {
		return nil, err
	}
	cluster, err := named(doc["clusters"], str(ctx, "cluster"), "cluster")
	if err != nil {
		return nil, err
	}
	user := map[string]any{}
	if str(ctx, "user") != "" {
		if user, err = named(doc["users"], str(ctx, "user"), "user"); err != nil {
			return nil, err
		}
	}
	if user["exec"] != nil || user["auth-provider"] != nil {
		return nil, errors.New("kubeconfig users with exec or auth-provider plugins are not supported")
	}
	server := strings.TrimRight(str(cluster, "server"), "/")
	if server == "" {
		return nil, fmt.Errorf("cluster of context %q has no server", ctxName)
	}
	tc := &tls.Config{}
	ca, err := pemOf(cluster, "certificate-authority", base)
	if err != nil {
		return nil, err
	}
	if ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("kubeconfig certificate-authority holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if b, _ := cluster["insecure-skip-tls-verify"].(bool); b {
		tc.InsecureSkipVerify = true
	}
	cert, err := pemOf(user, "client-certificate", base)
	if err != nil {
		return nil, err
	}
	key, err := pemOf(user, "client-key", base)
	if err != nil {
		return nil, err
	}
	if cert != nil && key != nil {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig client certificate: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	k := &KubeAccess{Server: server, TLS: tc, Token: str(user, "token"), Namespace: str(ctx, "namespace")}
	if tf := str(user, "tokenFile"); tf != "" {
		if !filepath.IsAbs(tf) {
			tf = filepath.Join(base, tf)
		}
		k.TokenFile = tf
	}
	if u := str(user, "username"); u != "" {
		k.Basic = [2]string{u, str(user, "password")}
	}
	return k, nil
}

// ConfigMapSource keeps the holder in sync with <namespace>/<name> key routes.json.
type ConfigMapSource struct {
	holder                 *Holder
	kubeconfig             string
	env                    map[string]string
	name, namespace        string
	watchSeconds           int
	minBackoff, maxBackoff time.Duration
}

type kubeObject struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Data    map[string]string `json:"data"`
	Code    int               `json:"code"`
	Message string            `json:"message"`
}

type apiError struct{ msg string }

func (e *apiError) Error() string { return e.msg }

// Run lists and watches until stop is closed; errors never drop the table in use.
func (w *ConfigMapSource) Run(stop <-chan struct{}) {
	backoff := w.minBackoff
	for {
		err := w.session(stop, &backoff)
		select {
		case <-stop:
			return
		default:
		}
		if err != nil {
			w.holder.SourceError("kubernetes", err.Error())
		}
		sleep := time.Duration(float64(backoff) * (0.5 + rand.Float64()))
		select {
		case <-stop:
			return
		case <-time.After(sleep):
		}
		backoff *= 2
		if backoff > w.maxBackoff {
			backoff = w.maxBackoff
		}
	}
}

func (w *ConfigMapSource) access() (*KubeAccess, error) {
	if w.kubeconfig != "" {
		return FromKubeconfig(w.kubeconfig)
	}
	return inCluster(w.env)
}

func (w *ConfigMapSource) session(stop <-chan struct{}, backoff *time.Duration) error {
	acc, err := w.access()
	if err != nil {
		return err
	}
	auth, err := acc.authHeader()
	if err != nil {
		return err
	}
	ns := w.namespace
	if ns == "" {
		ns = acc.Namespace
	}
	if ns == "" {
		ns = "default"
	}
	tr := &http.Transport{TLSClientConfig: acc.TLS, ResponseHeaderTimeout: time.Duration(w.watchSeconds+15) * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	where := ns + "/" + w.name
	base := acc.Server + "/api/v1/namespaces/" + url.PathEscape(ns) + "/configmaps?fieldSelector=" + url.QueryEscape("metadata.name="+w.name)
	get := func(u string, limit time.Duration) (*http.Response, error) {
		req, _ := http.NewRequest("GET", u, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Accept", "application/json")
		done := make(chan struct{})
		ctx, cancel := contextWithStop(stop, done, limit)
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			cancel()
			return nil, err
		}
		resp.Body = &cancelBody{resp.Body, cancel}
		return resp, nil
	}
	for { // one iteration per (re-)list
		resp, err := get(base, 30*time.Second)
		if err != nil {
			return err
		}
		var list struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
			Items []kubeObject `json:"items"`
		}
		if resp.StatusCode != 200 {
			return apiStatus(resp)
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if len(list.Items) == 0 {
			w.holder.SourceError("kubernetes", "ConfigMap "+where+" not found")
		} else {
			w.apply(&list.Items[0], where)
		}
		*backoff = w.minBackoff
		rv := list.Metadata.ResourceVersion
		for rv != "" { // one iteration per watch request
			select {
			case <-stop:
				return nil
			default:
			}
			rv, err = w.watch(get, base, where, rv)
			if err != nil {
				return err
			}
		}
	}
}

func apiStatus(resp *http.Response) error {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := string(raw)
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return &apiError{fmt.Sprintf("API server answered %d: %s", resp.StatusCode, msg)}
}

func (w *ConfigMapSource) apply(obj *kubeObject, where string) {
	doc, ok := obj.Data[routesKey]
	if !ok {
		w.holder.SourceError("kubernetes", fmt.Sprintf("ConfigMap %s has no key '%s'", where, routesKey))
		return
	}
	w.holder.Offer([]byte(doc), "kubernetes")
}

// watch follows one watch stream; it returns the resourceVersion to resume from ("" to re-list).
func (w *ConfigMapSource) watch(get func(string, time.Duration) (*http.Response, error), base, where, rv string) (string, error) {
	u := fmt.Sprintf("%s&watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s", base, w.watchSeconds, url.QueryEscape(rv))
	// The server ends the stream after watchSeconds; a silent, half-dead connection is cut a little later.
	resp, err := get(u, time.Duration(w.watchSeconds+15)*time.Second)
	if err != nil {
		return "", err
	}
	if resp.StatusCode == 410 {
		resp.Body.Close()
		return "", nil
	}
	if resp.StatusCode != 200 {
		return "", apiStatus(resp)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var ev struct {
			Type   string     `json:"type"`
			Object kubeObject `json:"object"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return "", err
		}
		switch ev.Type {
		case "ADDED", "MODIFIED":
			w.apply(&ev.Object, where)
		case "DELETED":
			w.holder.SourceError("kubernetes", "ConfigMap "+where+" was deleted")
		case "BOOKMARK":
		case "ERROR":
			if ev.Object.Code == 410 {
				return "", nil
			}
			return "", &apiError{"unexpected watch event ERROR: " + ev.Object.Message}
		default:
			return "", &apiError{"unexpected watch event " + ev.Type}
		}
		if v := ev.Object.Metadata.ResourceVersion; v != "" {
			rv = v
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return rv, nil
}
