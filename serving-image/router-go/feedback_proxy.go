// Feedback affinity, the I/O (mirror of mdserve/router/feedback_proxy.py): a feedback request goes
// whole to one variant through the normal proxy path or, when its items belong to several
// variants, as one request per variant (in parallel) whose answers are merged back into one.
//
// Precedence (docs/router.md, "Feedback"): an x-mdroute-variant request header, then the table's
// rules (both explicit: the client or the operator chose), then the memory of which variant served
// each request id, then the usual sticky key / split for ids the memory does not know.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

var errTooLarge = errors.New("response too large")

// routeFeedback serves a POST …:feedback request; the answer is written when it returns.
func (cc *clientConn) routeFeedback(a *Active, started time.Time) {
	r := &cc.req
	fb := parseFeedback(r.body)
	count := 1
	if fb != nil {
		count = len(fb.ids)
	}
	routed := &cc.s.metrics.FeedbackRouted
	if pinned, _ := r.Get("x-mdroute-variant"); strings.TrimSpace(pinned) != "" {
		pinned = strings.TrimSpace(pinned)
		vi := a.Table.VariantIndex(pinned)
		if vi < 0 {
			names := make([]string, len(a.Table.Variants))
			for i := range a.Table.Variants {
				names[i] = a.Table.Variants[i].Name
			}
			msg := fmt.Sprintf("x-mdroute-variant '%s' names no variant of the route table (%s)", truncateString(pinned, 64), strings.Join(names, ", "))
			cc.write(errorResponse(400, msg, r.requestID, "", !r.keepAlive))
			return
		}
		routed.add(pinned, "explicit", float64(count))
		cc.forwardWhole(a, Decision{Variant: vi, Reason: "pinned"}, started)
		return
	}
	if a.Decider.RuleVariant(r) >= 0 { // routed (and mirrored) by its rule, as before
		d := a.Decider.Decide(r)
		routed.add(a.Table.Variants[d.Variant].Name, "explicit", float64(count))
		cc.forwardWhole(a, d, started)
		return
	}
	if fb == nil { // forwarded whole as before: the model server's 400 says what is wrong
		d := a.Decider.Decide(r)
		routed.add(a.Table.Variants[d.Variant].Name, "fallback", 1)
		cc.forwardWhole(a, d, started)
		return
	}
	var fallback *Decision
	known := func(id string) int {
		if name, ok := cc.s.memory.VariantOf(id); ok {
			return a.Table.VariantIndex(name) // -1 for a variant since removed: unknown
		}
		return -1
	}
	parts := planFeedback(fb.ids, known, func() int {
		d := a.Decider.Decide(r)
		fallback = &d
		return d.Variant
	})
	for _, p := range parts {
		name := a.Table.Variants[p.variant].Name
		if p.remembered > 0 {
			routed.add(name, "remembered", float64(p.remembered))
		}
		if n := len(p.indices) - p.remembered; n > 0 {
			routed.add(name, "fallback", float64(n))
		}
	}
	if len(parts) == 1 {
		d := Decision{Variant: parts[0].variant, Reason: "feedback"}
		if fallback != nil && parts[0].remembered == 0 { // today's routing, shadows included
			d = *fallback
		}
		cc.forwardWhole(a, d, started)
		return
	}
	cc.forwardSplit(a, fb, parts, started)
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// partAnswer is one part's outcome: the backend's response, or an error the router makes (head nil).
type partAnswer struct {
	status int
	body   []byte
	head   *respHead
}

// forwardSplit sends each part to its variant in parallel and answers with the merged results, or
// with the first failing part's answer (a split is atomic per variant only).
func (cc *clientConn) forwardSplit(a *Active, fb *feedbackBody, parts []feedbackPart, started time.Time) {
	r := &cc.req
	answers := make([]partAnswer, len(parts))
	cc.s.inflight.Add(1)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = cc.sendPart(a, partBody(fb, &parts[i]), parts[i].variant) }()
	}
	wg.Wait()
	cc.s.inflight.Add(-1)
	seconds := time.Since(started).Seconds()
	names := make([]string, len(parts))
	bodies := make([][]byte, len(parts))
	for i := range parts {
		a.Stats[parts[i].variant].Observe(answers[i].status, seconds)
		names[i], bodies[i] = a.Table.Variants[parts[i].variant].Name, answers[i].body
	}
	if cc.s.accessLog {
		logf(levelInfo, "%s %s %s -> %s (feedback split)", r.requestID, r.method, r.target, strings.Join(names, ","))
	}
	for i := range answers {
		if ans := &answers[i]; ans.status != 200 {
			if ans.head == nil {
				cc.write(errorResponse(ans.status, string(ans.body), r.requestID, names[i], !r.keepAlive))
			} else {
				cc.head = cc.responseHead(cc.head[:0], ans.head, names[i], nil, int64(len(ans.body)))
				cc.write(append(cc.head, ans.body...))
			}
			return
		}
	}
	merged, err := mergeFeedback(len(fb.ids), parts, names, bodies)
	if err != nil {
		cc.write(errorResponse(502, err.Error(), r.requestID, "", !r.keepAlive))
		return
	}
	extra := "x-request-id: " + string(r.requestID) + "\r\nx-mdroute-variant: " + strings.Join(names, ",") + "\r\n"
	cc.write(simpleResponse(200, merged, "application/json", extra, !r.keepAlive))
}

// sendPart posts one part's body to variant vi and reads the whole (bounded) answer. It runs on
// its own goroutine: it only reads cc.req and uses buffers of its own.
func (cc *clientConn) sendPart(a *Active, body []byte, vi int) partAnswer {
	r := &cc.req
	b := a.Pools[vi]
	name := a.Table.Variants[vi].Name
	failed := func(status int, kind, msg string) partAnswer {
		msg = "backend " + a.Backends[vi] + " " + msg
		cc.s.metrics.UpstreamErrors.add(name, kind, 1)
		logf(levelWarning, "feedback %s to %s: %s", r.requestID, name, msg)
		return partAnswer{status: status, body: []byte(msg)}
	}
	payload := buildRequestBody(make([]byte, 0, 512+len(body)), r, b, cc.peer, "", body)
	payload = append(payload, body...)
	for attempt := 0; ; attempt++ {
		conn, err := b.acquire(a.connect, attempt > 0)
		if err != nil {
			if err == errPoolTimeout || isTimeout(err) {
				return failed(504, "timeout", fmt.Sprintf("gave no connection within %gs", a.Table.Timeouts.ConnectSeconds))
			}
			return failed(502, "connect", "refused the connection: "+dialMessage(err))
		}
		h := &respHead{}
		got := false
		var answer []byte
		reusable := false
		if _, err = conn.c.Write(payload); err == nil {
			conn.c.SetReadDeadline(time.Now().Add(a.request))
			if got, err = readResponseHead(conn.br, h); err == nil {
				answer, reusable, err = readBodyLimited(conn.br, h, cc.s.maxBody)
			}
		}
		if err != nil {
			b.release(conn, false)
			var pe *protocolError
			switch {
			case !got && conn.reused && attempt == 0 && isClosed(err):
				continue // a pooled connection the backend closed as we reused it: safe to retry once
			case errors.Is(err, errTooLarge):
				return failed(502, "protocol", fmt.Sprintf("answered feedback with more than %d bytes", cc.s.maxBody))
			case isTimeout(err):
				return failed(504, "timeout", fmt.Sprintf("did not answer within %gs", a.Table.Timeouts.RequestSeconds))
			case errors.As(err, &pe):
				return failed(502, "protocol", pe.msg)
			case !got:
				return failed(502, "connect", "closed the connection before answering ("+closeReason(err)+")")
			}
			return failed(502, "connect", "closed the connection mid-response ("+closeReason(err)+")")
		}
		b.release(conn, reusable)
		return partAnswer{status: h.status, body: answer, head: h}
	}
}

// readBodyLimited reads a whole response body of at most limit bytes; it reports whether the
// connection can be reused.
func readBodyLimited(br *bufio.Reader, h *respHead, limit int64) ([]byte, bool, error) {
	switch {
	case h.status == 204 || h.status == 304:
		return nil, !h.close, nil
	case h.chunked:
		var out []byte
		for {
			n, err := readChunkSize(br)
			if err != nil {
				return nil, false, err
			}
			if n == 0 {
				return out, !h.close, skipTrailers(br)
			}
			if int64(len(out))+n > limit {
				return nil, false, errTooLarge
			}
			start := len(out)
			out = append(out, make([]byte, n)...)
			if _, err := io.ReadFull(br, out[start:]); err != nil {
				return nil, false, err
			}
			if _, err := readLine(br); err != nil {
				return nil, false, err
			}
		}
	case h.contentLength >= 0:
		if h.contentLength > limit {
			return nil, false, errTooLarge
		}
		out := make([]byte, h.contentLength)
		if _, err := io.ReadFull(br, out); err != nil {
			return nil, false, err
		}
		return out, !h.close, nil
	}
	out, err := io.ReadAll(io.LimitReader(br, limit+1)) // delimited by the backend closing
	if err == nil && int64(len(out)) > limit {
		err = errTooLarge
	}
	return out, false, err
}
