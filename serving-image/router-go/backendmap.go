package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// A backend map is a JSON file {"host[:port]": ["127.0.0.1:P", ...]} that a local harness (the dev cluster's
// pod bridge) rewrites as Services come and go. Unlike --backend-override it is re-read while running, so a
// new canary Service does not need a router restart (a restarted router serves 503 until its table loads).

// parseBackendMap turns the file's document into overrides: each host to the first address's URL.
func parseBackendMap(doc []byte) (map[string]string, error) {
	var raw map[string][]string
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("backend map: %w", err)
	}
	out := make(map[string]string, len(raw))
	for host, addrs := range raw {
		if len(addrs) > 0 && addrs[0] != "" {
			out[host] = "http://" + addrs[0]
		}
	}
	return out, nil
}

// backendMapSource polls the file's modification time and hands changed maps to the holder.
func backendMapSource(h *Holder, path string, every time.Duration, stop <-chan struct{}) {
	var seen time.Time
	var seenSize int64 = -1
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if info, err := os.Stat(path); err == nil && (!info.ModTime().Equal(seen) || info.Size() != seenSize) {
			if doc, err := os.ReadFile(path); err == nil {
				if m, err := parseBackendMap(doc); err == nil {
					seen, seenSize = info.ModTime(), info.Size()
					h.SetMapOverrides(m)
				} else {
					logf(levelWarning, "%s: %v (keeping the previous map)", path, err)
				}
			}
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}
