// The proxy port: an HTTP/1.1 server on raw connections. Each caller connection is served by one
// goroutine which parses a request, asks the decider for a variant, and relays the exchange with a
// pooled backend connection itself (no goroutine hand-off on the hot path).
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	idleClientTimeout = 75 * time.Second
	maxHeadBytes      = 64 << 10
	maxRequestID      = 128
)

// Server is the proxy.
type Server struct {
	holder    *Holder
	metrics   *Metrics
	pools     *Pools
	maxBody   int64
	shadowMax int64
	accessLog bool
	memory    *FeedbackMemory // which variant served each request id, for feedback
	mu        sync.Mutex
	conns     map[*clientConn]struct{}
	connWG    sync.WaitGroup
	shadowWG  sync.WaitGroup
	stopping  atomic.Bool
	inflight  atomic.Int64
	listener  net.Listener
}

type clientConn struct {
	s    *Server
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	peer []byte
	busy atomic.Bool
	dead bool
	// remember: the request is a prediction; a 2xx answer records its variant for feedback.
	remember bool
	req      request
	resp     respHead
	out      []byte
	head     []byte
	copyb    []byte
	ridb     [32]byte
}

type request struct {
	method, target []byte
	hdrs           []hdr
	arena          []byte
	body           []byte
	keepAlive      bool
	contentLength  int64
	chunked        bool
	expect         bool
	upgrade        bool
	requestID      []byte
	headOnly       bool
}

// Get implements Headers (first occurrence, case-insensitive).
func (r *request) Get(lower string) (string, bool) {
	for i := range r.hdrs {
		if equalFoldLower(r.hdrs[i].name, lower) {
			return string(r.hdrs[i].value), true
		}
	}
	return "", false
}

func equalFoldLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// Serve accepts connections until the listener is closed (s.listener must be ln, set before Serve).
func (s *Server) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.stopping.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		cc := &clientConn{s: s, c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			cc.peer = []byte(a.IP.String())
		}
		s.mu.Lock()
		s.conns[cc] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go cc.serve()
	}
}

// Shutdown stops accepting, lets in-flight requests finish (up to grace), then closes everything.
func (s *Server) Shutdown(grace time.Duration) {
	s.stopping.Store(true)
	if s.listener != nil {
		s.listener.Close()
	}
	s.mu.Lock()
	for cc := range s.conns {
		if !cc.busy.Load() {
			cc.c.SetReadDeadline(time.Now()) // wake idle readers; busy ones close after their answer
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.mu.Lock()
		for cc := range s.conns {
			cc.c.Close()
		}
		s.mu.Unlock()
	}
	sdone := make(chan struct{})
	go func() { s.shadowWG.Wait(); close(sdone) }()
	select {
	case <-sdone:
	case <-time.After(2 * time.Second):
	}
	s.pools.CloseIdle()
}

func (cc *clientConn) serve() {
	s := cc.s
	defer func() {
		cc.c.Close()
		s.mu.Lock()
		delete(s.conns, cc)
		s.mu.Unlock()
		s.connWG.Done()
	}()
	for {
		cc.c.SetReadDeadline(time.Now().Add(idleClientTimeout))
		if _, err := cc.br.Peek(1); err != nil {
			return
		}
		cc.busy.Store(true)
		if err := cc.readRequest(); err != nil {
			var he *httpError
			if errors.As(err, &he) {
				cc.bw.Write(errorResponse(he.status, he.msg, cc.newRequestID(nil), "", true))
				cc.bw.Flush()
			}
			return
		}
		cc.handle()
		cc.busy.Store(false)
		if cc.dead || !cc.req.keepAlive || s.stopping.Load() {
			return
		}
	}
}

func (cc *clientConn) readRequest() error {
	r := &cc.req
	br := cc.br
	r.arena, r.hdrs, r.body = r.arena[:0], r.hdrs[:0], r.body[:0]
	r.contentLength, r.chunked, r.expect, r.upgrade = -1, false, false, false
	var line []byte
	var err error
	for { // tolerate empty lines before a request line (RFC 9112 2.2)
		if line, err = readLine(br); err != nil {
			return badRequest(err)
		}
		if len(line) > 0 {
			break
		}
	}
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 || !bytes.HasPrefix(line[sp2+1:], []byte("HTTP/1.")) || len(line)-sp2-1 != 8 {
		return &httpError{400, "malformed HTTP request: bad request line"}
	}
	http10 := line[len(line)-1] == '0'
	r.arena = append(r.arena, line[:sp2]...)
	r.method, r.target = r.arena[:sp1:sp1], r.arena[sp1+1:sp2:sp2]
	r.headOnly = string(r.method) == "HEAD"
	r.keepAlive = !http10
	total := len(line)
	var key [32]byte
	for {
		line, err := readLine(br)
		if err != nil {
			return badRequest(err)
		}
		total += len(line)
		if total > maxHeadBytes {
			return &httpError{400, "malformed HTTP request: header section too large"}
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' || bytes.ContainsAny(line[:colon], " \t") {
			return &httpError{400, "malformed HTTP request: invalid header line"}
		}
		s := len(r.arena)
		r.arena = append(r.arena, line[:colon]...)
		n := len(r.arena)
		r.arena = append(r.arena, trimOWS(line[colon+1:])...)
		name, value := r.arena[s:n:n], r.arena[n:len(r.arena):len(r.arena)]
		r.hdrs = append(r.hdrs, hdr{name, value})
		switch string(lowerKey(&key, name)) {
		case "content-length":
			v, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || v < 0 || (r.contentLength >= 0 && v != r.contentLength) {
				return &httpError{400, "malformed HTTP request: invalid content-length"}
			}
			r.contentLength = v
		case "transfer-encoding":
			if !hasToken(value, "chunked") {
				return &httpError{501, "transfer-encoding other than chunked is not supported"}
			}
			r.chunked = true
		case "connection":
			if hasToken(value, "close") {
				r.keepAlive = false
			} else if hasToken(value, "keep-alive") {
				r.keepAlive = true
			}
			if hasToken(value, "upgrade") {
				r.upgrade = true
			}
		case "upgrade":
			r.upgrade = true
		case "expect":
			r.expect = bytes.EqualFold(value, []byte("100-continue"))
		}
	}
	// The arena may have moved while growing: slices already taken stay valid (old array), fine.
	if r.chunked && r.contentLength >= 0 {
		return &httpError{400, "malformed HTTP request: both content-length and transfer-encoding"}
	}
	if r.upgrade {
		return &httpError{501, "protocol upgrades (e.g. WebSocket) are not supported by the router"}
	}
	max := cc.s.maxBody
	if r.contentLength > max {
		return &httpError{413, fmt.Sprintf("request body larger than %d bytes", max)}
	}
	if r.expect && (r.contentLength > 0 || r.chunked) {
		cc.c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	}
	if r.contentLength > 0 {
		if int64(cap(r.body)) < r.contentLength {
			r.body = make([]byte, r.contentLength)
		}
		r.body = r.body[:r.contentLength]
		if _, err := io.ReadFull(br, r.body); err != nil {
			return err
		}
	} else if r.chunked {
		for {
			n, err := readChunkSize(br)
			if err != nil {
				return badRequest(err)
			}
			if n == 0 {
				if err := skipTrailers(br); err != nil {
					return badRequest(err)
				}
				break
			}
			if int64(len(r.body))+n > max {
				return &httpError{413, fmt.Sprintf("request body larger than %d bytes", max)}
			}
			start := len(r.body)
			r.body = append(r.body, make([]byte, n)...)
			if _, err := io.ReadFull(br, r.body[start:]); err != nil {
				return err
			}
			if _, err := readLine(br); err != nil {
				return badRequest(err)
			}
		}
	}
	return nil
}

func badRequest(err error) error {
	var pe *protocolError
	if errors.As(err, &pe) {
		return &httpError{400, "malformed HTTP request: " + pe.msg}
	}
	return err
}

func validRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > maxRequestID {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func (cc *clientConn) newRequestID(given []byte) []byte {
	if validRequestID(given) {
		return given
	}
	var raw [16]byte
	for i := 0; i < 16; i += 8 {
		v := rand.Uint64()
		for j := 0; j < 8; j++ {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	hex.Encode(cc.ridb[:], raw[:])
	return cc.ridb[:]
}

func (cc *clientConn) handle() {
	r := &cc.req
	t := r.target
	if bytes.HasPrefix(t, []byte("/-/")) || string(t) == "/metrics" || bytes.HasPrefix(t, []byte("/metrics?")) {
		cc.bw.Write(cc.s.local(r))
		cc.bw.Flush()
		return
	}
	started := time.Now()
	var given []byte
	for i := range r.hdrs {
		if equalFoldLower(r.hdrs[i].name, "x-request-id") {
			given = r.hdrs[i].value
			break
		}
	}
	r.requestID = cc.newRequestID(given)
	a := cc.s.holder.Active()
	if a == nil {
		cc.write(errorResponse(503, "no route table loaded yet", r.requestID, "", !r.keepAlive))
		return
	}
	if len(t) == 0 || t[0] != '/' {
		cc.write(errorResponse(400, "request target must be a path (origin-form)", r.requestID, "", !r.keepAlive))
		return
	}
	if isFeedback(r.method, t) {
		cc.routeFeedback(a, started)
		return
	}
	cc.remember = isInference(r.method, t)
	cc.forwardWhole(a, a.Decider.Decide(r), started)
	cc.remember = false
}

// forwardWhole relays the request to d's variant, records it, then sends d's shadow copies.
func (cc *clientConn) forwardWhole(a *Active, d Decision, started time.Time) {
	r := &cc.req
	cc.s.inflight.Add(1)
	status := cc.forward(a, d.Variant)
	cc.s.inflight.Add(-1)
	a.Stats[d.Variant].Observe(status, time.Since(started).Seconds())
	if cc.s.accessLog {
		logf(levelInfo, "%s %s %s -> %s %d (%s)", r.requestID, r.method, r.target, a.Table.Variants[d.Variant].Name, status, d.Reason)
	}
	for _, sv := range d.Shadows {
		cc.s.startShadow(a, sv, r, cc.peer)
	}
}

func (cc *clientConn) write(b []byte) {
	cc.bw.Write(b)
	cc.bw.Flush()
}

// isDroppedRequestHeader: hop-by-hop headers and the ones the proxy sets itself.
func isDroppedRequestHeader(lower []byte) bool {
	switch string(lower) {
	case "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
		"trailer", "trailers", "transfer-encoding", "upgrade", "content-length", "host", "expect", "x-request-id", "x-forwarded-for":
		return true
	}
	return false
}

func isDroppedResponseHeader(lower []byte) bool {
	switch string(lower) {
	case "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
		"trailer", "trailers", "transfer-encoding", "upgrade", "content-length", "x-request-id", "x-mdroute-variant":
		return true
	}
	return false
}

// buildRequest appends the upstream request head for backend b to out.
func buildRequest(out []byte, r *request, b *Backend, peer []byte, extra string) []byte {
	return buildRequestBody(out, r, b, peer, extra, r.body)
}

// buildRequestBody is buildRequest for a body other than the caller's (a part of a feedback list).
func buildRequestBody(out []byte, r *request, b *Backend, peer []byte, extra string, body []byte) []byte {
	out = append(out, r.method...)
	out = append(out, ' ')
	out = append(out, r.target...)
	out = append(out, " HTTP/1.1\r\nhost: "...)
	out = append(out, b.hostHeader...)
	out = append(out, "\r\n"...)
	out = append(out, extra...)
	var forwarded []byte
	hasProto := false
	var key [32]byte
	for i := range r.hdrs {
		h := &r.hdrs[i]
		lower := lowerKey(&key, h.name)
		if isDroppedRequestHeader(lower) {
			if forwarded == nil && string(lower) == "x-forwarded-for" {
				forwarded = h.value
			}
			continue
		}
		if string(lower) == "x-forwarded-proto" {
			hasProto = true
		}
		out = append(out, h.name...)
		out = append(out, ": "...)
		out = append(out, h.value...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "x-request-id: "...)
	out = append(out, r.requestID...)
	out = append(out, "\r\nx-forwarded-for: "...)
	if forwarded != nil {
		out = append(out, forwarded...)
		out = append(out, ", "...)
	}
	out = append(out, peer...)
	out = append(out, "\r\n"...)
	if !hasProto {
		out = append(out, "x-forwarded-proto: http\r\n"...)
	}
	m := string(r.method)
	if len(body) > 0 || m == "POST" || m == "PUT" || m == "PATCH" {
		out = append(out, "content-length: "...)
		out = strconv.AppendInt(out, int64(len(body)), 10)
		out = append(out, "\r\n"...)
	}
	return append(out, "\r\n"...)
}

// responseHead appends the caller's response head (status line, backend headers, ours, framing).
func (cc *clientConn) responseHead(out []byte, h *respHead, variant string, framing []byte, length int64) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(h.status), 10)
	out = append(out, ' ')
	if len(h.reason) > 0 {
		out = append(out, h.reason...)
	} else {
		out = append(out, reasonPhrase(h.status)...)
	}
	out = append(out, "\r\n"...)
	var key [32]byte
	for i := range h.hdrs {
		if isDroppedResponseHeader(lowerKey(&key, h.hdrs[i].name)) {
			continue
		}
		out = append(out, h.hdrs[i].name...)
		out = append(out, ": "...)
		out = append(out, h.hdrs[i].value...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "x-request-id: "...)
	out = append(out, cc.req.requestID...)
	out = append(out, "\r\nx-mdroute-variant: "...)
	out = append(out, variant...)
	out = append(out, "\r\n"...)
	if !cc.req.keepAlive {
		out = append(out, "connection: close\r\n"...)
	}
	if framing != nil {
		out = append(out, framing...)
	} else if length >= 0 {
		out = append(out, "content-length: "...)
		out = strconv.AppendInt(out, length, 10)
		out = append(out, "\r\n"...)
	}
	return append(out, "\r\n"...)
}

func reasonPhrase(status int) string {
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "Unknown"
}

// forward relays the request to variant vi and the answer back; it returns the status sent.
func (cc *clientConn) forward(a *Active, vi int) int {
	r := &cc.req
	b := a.Pools[vi]
	name := a.Table.Variants[vi].Name
	cc.out = buildRequest(cc.out[:0], r, b, cc.peer, "")
	bigBody := len(r.body) > 64<<10
	if !bigBody {
		cc.out = append(cc.out, r.body...)
	}
	for attempt := 0; ; attempt++ {
		conn, err := b.acquire(a.connect, attempt > 0)
		if err != nil {
			if err == errPoolTimeout || isTimeout(err) {
				return cc.fail(a, vi, 504, "timeout", fmt.Sprintf("gave no connection within %gs", a.Table.Timeouts.ConnectSeconds))
			}
			return cc.fail(a, vi, 502, "connect", "refused the connection: "+dialMessage(err))
		}
		if bigBody {
			bufs := net.Buffers{cc.out, r.body}
			_, err = bufs.WriteTo(conn.c)
		} else {
			_, err = conn.c.Write(cc.out)
		}
		got := false
		if err == nil {
			conn.c.SetReadDeadline(time.Now().Add(a.request))
			got, err = readResponseHead(conn.br, &cc.resp)
		}
		if err != nil {
			b.release(conn, false)
			if !got && conn.reused && attempt == 0 && isClosed(err) {
				continue // a pooled connection the backend closed as we reused it: safe to retry once
			}
			if isTimeout(err) {
				return cc.fail(a, vi, 504, "timeout", fmt.Sprintf("did not answer within %gs", a.Table.Timeouts.RequestSeconds))
			}
			var pe *protocolError
			if errors.As(err, &pe) {
				return cc.fail(a, vi, 502, "protocol", pe.msg)
			}
			if !got {
				return cc.fail(a, vi, 502, "connect", "closed the connection before answering ("+closeReason(err)+")")
			}
			return cc.fail(a, vi, 502, "connect", "closed the connection mid-response ("+closeReason(err)+")")
		}
		return cc.relay(a, vi, conn, name)
	}
}

func closeReason(err error) string {
	if errors.Is(err, io.EOF) {
		return "EOF"
	}
	return dialMessage(err)
}

// relay sends the backend response (head already read) to the caller.
func (cc *clientConn) relay(a *Active, vi int, conn *upConn, name string) int {
	h := &cc.resp
	r := &cc.req
	b := a.Pools[vi]
	br := conn.br
	status := h.status
	if cc.remember && status >= 200 && status < 300 {
		// Before the caller can see the answer: its feedback may follow on another connection at once.
		cc.s.memory.Remember(r.requestID, name)
	}
	noBody := r.headOnly || status == 204 || status == 304
	switch {
	case noBody:
		length := int64(-1)
		if r.headOnly {
			length = h.contentLength
		}
		cc.head = cc.responseHead(cc.head[:0], h, name, nil, length)
		cc.write(cc.head)
		b.release(conn, !h.close)
		return status
	case !h.chunked && h.contentLength >= 0 && int64(br.Buffered()) >= h.contentLength:
		// The whole response is here: one write to the caller.
		n := int(h.contentLength)
		body, _ := br.Peek(n)
		cc.head = cc.responseHead(cc.head[:0], h, name, nil, h.contentLength)
		cc.bw.Write(cc.head)
		cc.bw.Write(body)
		br.Discard(n)
		b.release(conn, !h.close)
		if err := cc.bw.Flush(); err != nil {
			cc.dead = true
		}
		return status
	}
	// Streaming: headers first, then the body as it arrives (back-pressure: we block on the caller).
	var framing []byte
	if h.chunked || h.contentLength < 0 {
		framing = []byte("transfer-encoding: chunked\r\n")
	}
	cc.head = cc.responseHead(cc.head[:0], h, name, framing, h.contentLength)
	cc.bw.Write(cc.head)
	if cc.copyb == nil {
		cc.copyb = make([]byte, 32<<10)
	}
	err := cc.stream(a, conn, h)
	if err == nil {
		err = cc.bw.Flush()
		if err != nil {
			cc.dead = true
			b.release(conn, false)
			return status
		}
		b.release(conn, !h.close && (h.chunked || h.contentLength >= 0))
		return status
	}
	b.release(conn, false)
	if errors.Is(err, errClientWrite) {
		cc.dead = true
		return status
	}
	cc.s.metrics.UpstreamErrors.add(name, "stream", 1)
	logf(levelWarning, "request %s to %s: response stream broke: %v", r.requestID, name, err)
	cc.dead = true // headers are out: the only honest signal left is to cut the connection
	return status
}

var errClientWrite = errors.New("caller went away")

// stream copies the body; for chunked or unsized bodies it re-chunks to the caller.
func (cc *clientConn) stream(a *Active, conn *upConn, h *respHead) error {
	br := conn.br
	bw := cc.bw
	fill := func() error { // flush what we have before blocking on the backend
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return errClientWrite
			}
			conn.c.SetReadDeadline(time.Now().Add(a.request))
		}
		return nil
	}
	copyN := func(n int64, chunk bool) error {
		for n > 0 {
			if err := fill(); err != nil {
				return err
			}
			want := int64(len(cc.copyb))
			if n < want {
				want = n
			}
			k, err := br.Read(cc.copyb[:want])
			if k > 0 {
				if chunk {
					bw.WriteString(strconv.FormatInt(int64(k), 16))
					bw.WriteString("\r\n")
				}
				if _, werr := bw.Write(cc.copyb[:k]); werr != nil {
					return errClientWrite
				}
				if chunk {
					bw.WriteString("\r\n")
				}
				n -= int64(k)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case h.chunked:
		for {
			if err := fill(); err != nil {
				return err
			}
			n, err := readChunkSize(br)
			if err != nil {
				return err
			}
			if n == 0 {
				if err := skipTrailers(br); err != nil {
					return err
				}
				bw.WriteString("0\r\n\r\n")
				return nil
			}
			bw.WriteString(strconv.FormatInt(n, 16))
			bw.WriteString("\r\n")
			if err := copyN(n, false); err != nil {
				return err
			}
			bw.WriteString("\r\n")
			if _, err := readLine(br); err != nil {
				return err
			}
		}
	case h.contentLength >= 0:
		return copyN(h.contentLength, false)
	default: // delimited by the backend closing the connection
		for {
			if err := fill(); err != nil {
				return err
			}
			k, err := br.Read(cc.copyb)
			if k > 0 {
				bw.WriteString(strconv.FormatInt(int64(k), 16))
				bw.WriteString("\r\n")
				bw.Write(cc.copyb[:k])
				bw.WriteString("\r\n")
			}
			if errors.Is(err, io.EOF) {
				bw.WriteString("0\r\n\r\n")
				h.close = true
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
}

// fail answers a request the router could not forward.
func (cc *clientConn) fail(a *Active, vi int, status int, kind, msg string) int {
	name := a.Table.Variants[vi].Name
	msg = "backend " + a.Backends[vi] + " " + msg
	cc.s.metrics.UpstreamErrors.add(name, kind, 1)
	logf(levelWarning, "request %s to %s: %s", cc.req.requestID, name, msg)
	cc.write(errorResponse(status, msg, cc.req.requestID, name, !cc.req.keepAlive))
	return status
}

func simpleResponse(status int, body []byte, ctype string, extra string, close bool) []byte {
	out := make([]byte, 0, 160+len(body))
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, reasonPhrase(status)...)
	out = append(out, "\r\ncontent-type: "...)
	out = append(out, ctype...)
	out = append(out, "\r\ncontent-length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\n"...)
	out = append(out, extra...)
	if close {
		out = append(out, "connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	return append(out, body...)
}

type errorBody struct {
	Error     string  `json:"error"`
	RequestID string  `json:"request_id"`
	Variant   *string `json:"variant"`
	Source    string  `json:"source"`
}

// errorResponse is a JSON error from the router (source: mdroute tells it apart from a backend's).
func errorResponse(status int, msg string, rid []byte, variant string, close bool) []byte {
	eb := errorBody{Error: msg, RequestID: string(rid), Source: "mdroute"}
	extra := "x-request-id: " + string(rid) + "\r\n"
	if variant != "" {
		eb.Variant = &variant
		extra += "x-mdroute-variant: " + variant + "\r\n"
	}
	body, _ := json.Marshal(eb)
	return simpleResponse(status, body, "application/json", extra, close)
}

func jsonResponse(status int, v any, close bool) []byte {
	body, _ := json.Marshal(v)
	return simpleResponse(status, body, "application/json", "", close)
}

// local answers the router's own endpoints.
func (s *Server) local(r *request) []byte {
	path := r.target
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	close := !r.keepAlive
	if m := string(r.method); m != "GET" && m != "HEAD" {
		return simpleResponse(405, []byte(`{"error": "router endpoints accept GET only"}`), "application/json", "", close)
	}
	switch string(path) {
	case "/-/healthz":
		return jsonResponse(200, map[string]string{"status": "alive"}, close)
	case "/-/ready":
		a := s.holder.Active()
		if a == nil {
			return jsonResponse(503, map[string]any{"status": "no route table loaded yet", "last_error": s.holder.LastError()}, close)
		}
		return jsonResponse(200, map[string]string{"status": "ready", "version": a.Table.Version}, close)
	case "/-/routes":
		return jsonResponse(200, s.holder.View(), close)
	case "/metrics":
		return simpleResponse(200, s.metrics.Exposition(), "text/plain; version=0.0.4; charset=utf-8", "", close)
	}
	return jsonResponse(404, map[string]string{"error": fmt.Sprintf("no router endpoint '%s'", path)}, close)
}

// startShadow sends a fire-and-forget copy of r to variant vi (after the caller's answer).
func (s *Server) startShadow(a *Active, vi int, r *request, peer []byte) {
	name := a.Table.Variants[vi].Name
	b := a.Shadow[vi]
	if b.inflight.Add(1) > s.shadowMax {
		b.inflight.Add(-1)
		s.metrics.Shadow.add(name, "dropped", 1)
		return
	}
	payload := buildRequest(make([]byte, 0, 512+len(r.body)), r, b, peer, "x-mdroute-shadow: 1\r\n")
	payload = append(payload, r.body...)
	headOnly := r.headOnly
	s.shadowWG.Add(1)
	go func() {
		defer s.shadowWG.Done()
		defer b.inflight.Add(-1)
		outcome := s.shadow(a, b, payload, headOnly)
		s.metrics.Shadow.add(name, outcome, 1)
	}()
}

func (s *Server) shadow(a *Active, b *Backend, payload []byte, headOnly bool) string {
	conn, err := b.acquire(a.connect, false)
	if err != nil {
		if err == errPoolTimeout || isTimeout(err) {
			return "timeout"
		}
		return "error"
	}
	conn.c.SetDeadline(time.Now().Add(a.shadowT))
	var h respHead
	if _, err = conn.c.Write(payload); err == nil {
		_, err = readResponseHead(conn.br, &h)
	}
	reusable := false
	if err == nil {
		reusable, err = discardBody(conn, &h, headOnly || h.status == 204 || h.status == 304)
	}
	if err == nil {
		conn.c.SetDeadline(time.Time{})
	}
	b.release(conn, err == nil && reusable)
	switch {
	case err != nil && isTimeout(err):
		return "timeout"
	case err != nil:
		logf(levelDebug, "shadow to %s failed: %v", b.URL, err)
		return "error"
	case h.status >= 500:
		return "http_error"
	}
	return "ok"
}
