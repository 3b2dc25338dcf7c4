// Keep-alive connection pools to backends and the HTTP/1.1 response reader shared by the proxy
// and the shadow sender. One goroutine carries a whole exchange (write request, read and relay the
// response) with no hand-off between goroutines: that is most of the speed.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var errPoolTimeout = errors.New("pool wait timed out")

// Backend is one backend base URL with its connection pool.
type Backend struct {
	URL        string
	addr       string
	serverName string
	hostHeader []byte
	tls        bool
	keepalive  time.Duration
	sem        chan struct{}
	mu         sync.Mutex
	idle       []*upConn
	inflight   atomic.Int64 // shadow copies in flight (shadow pools only)
}

type upConn struct {
	c         net.Conn
	br        *bufio.Reader
	b         *Backend
	idleSince time.Time
	reused    bool
}

// Pools holds the caller pools and (separately, so slow shadows never take callers' connections)
// the shadow pools, one per backend URL.
type Pools struct {
	mu          sync.Mutex
	m           map[string]*Backend
	limit       int
	shadowLimit int
	keepalive   time.Duration
}

// NewPools makes empty pools.
func NewPools(limit, shadowLimit int, keepalive time.Duration) *Pools {
	return &Pools{m: map[string]*Backend{}, limit: limit, shadowLimit: shadowLimit, keepalive: keepalive}
}

// Get returns (creating) the pool of a backend URL.
func (p *Pools) Get(raw string, shadow bool) *Backend {
	key := raw
	if shadow {
		key = "shadow " + raw
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.m[key]; b != nil {
		return b
	}
	u, _ := url.Parse(raw)
	b := &Backend{URL: raw, tls: u.Scheme == "https", keepalive: p.keepalive, hostHeader: []byte(u.Host), serverName: u.Hostname()}
	port := u.Port()
	if port == "" {
		port = "80"
		if b.tls {
			port = "443"
		}
	}
	b.addr = net.JoinHostPort(u.Hostname(), port)
	limit := p.limit
	if shadow {
		limit = p.shadowLimit
	}
	b.sem = make(chan struct{}, limit)
	p.m[key] = b
	return b
}

// CloseIdle closes every idle connection (at shutdown).
func (p *Pools) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.m {
		b.mu.Lock()
		for _, c := range b.idle {
			c.c.Close()
		}
		b.idle = nil
		b.mu.Unlock()
	}
}

func (b *Backend) popIdle() *upConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.idle)
	if n == 0 {
		return nil
	}
	c := b.idle[n-1] // the most recently used: least likely to have been closed by the server
	b.idle = b.idle[:n-1]
	if time.Since(c.idleSince) > b.keepalive { // all older ones are stale too
		c.c.Close()
		for _, o := range b.idle {
			o.c.Close()
		}
		b.idle = b.idle[:0]
		return nil
	}
	c.reused = true
	return c
}

// acquire returns a connection (a new one if fresh), waiting for a free slot at most timeout.
func (b *Backend) acquire(timeout time.Duration, fresh bool) (*upConn, error) {
	start := time.Now()
	select {
	case b.sem <- struct{}{}:
	default:
		t := time.NewTimer(timeout)
		select {
		case b.sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			return nil, errPoolTimeout
		}
	}
	if !fresh {
		if c := b.popIdle(); c != nil {
			return c, nil
		}
	}
	d := net.Dialer{Timeout: timeout - time.Since(start), KeepAlive: 30 * time.Second}
	var conn net.Conn
	var err error
	if b.tls {
		conn, err = tls.DialWithDialer(&d, "tcp", b.addr, &tls.Config{ServerName: b.serverName})
	} else {
		conn, err = d.Dial("tcp", b.addr)
	}
	if err != nil {
		<-b.sem
		return nil, err
	}
	return &upConn{c: conn, br: bufio.NewReaderSize(conn, 32<<10), b: b}, nil
}

// release returns a connection after its exchange; it is closed unless reusable.
func (b *Backend) release(c *upConn, reusable bool) {
	if reusable {
		c.idleSince = time.Now()
		b.mu.Lock()
		b.idle = append(b.idle, c)
		b.mu.Unlock()
	} else {
		c.c.Close()
	}
	<-b.sem
}

// dialMessage is the "refused the connection: ..." detail for a dial error.
func dialMessage(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isClosed: the peer closed or reset the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// hdr is a header line; name and value point into an arena.
type hdr struct{ name, value []byte }

// respHead is a parsed backend response head.
type respHead struct {
	status        int
	reason        []byte
	hdrs          []hdr
	contentLength int64 // -1: none
	chunked       bool
	close         bool // the backend will close the connection after this response
	arena         []byte
}

type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

// readLine reads one CRLF/LF-terminated line without the terminator; the slice is valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &protocolError{"header line too long"}
		}
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// lowerKey writes the lower-case form of name into buf (names longer than buf are returned as-is).
func lowerKey(buf *[32]byte, name []byte) []byte {
	if len(name) > len(buf) {
		return name
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(name)]
}

func hasToken(value []byte, token string) bool {
	for _, part := range bytes.Split(value, []byte(",")) {
		if bytes.EqualFold(trimOWS(part), []byte(token)) {
			return true
		}
	}
	return false
}

// readResponseHead reads a final response head (interim 1xx responses are skipped).
// got reports whether any byte of a response was received (for the safe-retry rule).
func readResponseHead(br *bufio.Reader, h *respHead) (got bool, err error) {
	for {
		h.arena, h.hdrs = h.arena[:0], h.hdrs[:0]
		h.contentLength, h.chunked, h.close = -1, false, false
		line, err := readLine(br)
		if err != nil {
			return got || len(line) > 0 || br.Buffered() > 0, err
		}
		got = true
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return true, &protocolError{fmt.Sprintf("sent an invalid HTTP response: bad status line %q", truncate(line, 64))}
		}
		http10 := line[7] == '0'
		status, err := strconv.Atoi(string(line[9:12]))
		if err != nil || status < 100 || status > 999 {
			return true, &protocolError{fmt.Sprintf("sent an invalid HTTP response: bad status line %q", truncate(line, 64))}
		}
		start := len(h.arena)
		if len(line) > 13 {
			h.arena = append(h.arena, line[13:]...)
		}
		h.reason = h.arena[start:len(h.arena):len(h.arena)]
		h.status = status
		keepAlive := false
		var key [32]byte
		for {
			line, err := readLine(br)
			if err != nil {
				return true, err
			}
			if len(line) == 0 {
				break
			}
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return true, &protocolError{"sent an invalid HTTP response: malformed header line"}
			}
			s := len(h.arena)
			h.arena = append(h.arena, line[:colon]...)
			n := len(h.arena)
			h.arena = append(h.arena, trimOWS(line[colon+1:])...)
			name, value := h.arena[s:n:n], h.arena[n:len(h.arena):len(h.arena)]
			h.hdrs = append(h.hdrs, hdr{name, value})
			switch string(lowerKey(&key, name)) {
			case "content-length":
				v, err := strconv.ParseInt(string(value), 10, 64)
				if err != nil || v < 0 || (h.contentLength >= 0 && h.contentLength != v) {
					return true, &protocolError{"sent an invalid HTTP response: bad content-length"}
				}
				h.contentLength = v
			case "transfer-encoding":
				h.chunked = hasToken(value, "chunked")
			case "connection":
				if hasToken(value, "close") {
					h.close = true
				}
				if hasToken(value, "keep-alive") {
					keepAlive = true
				}
			}
		}
		// The arena may have moved while growing: re-slice the reason from its start.
		h.reason = h.arena[start : start+len(h.reason)]
		if http10 && !keepAlive {
			h.close = true
		}
		if status == 101 {
			return true, &protocolError{"tried to switch protocols"}
		}
		if status >= 200 {
			if h.chunked {
				h.contentLength = -1
			}
			return true, nil
		}
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// readChunkSize reads a chunk-size line (extensions ignored).
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := readLine(br)
	if err != nil {
		return 0, err
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	n, err := strconv.ParseInt(string(trimOWS(line)), 16, 64)
	if err != nil || n < 0 {
		return 0, &protocolError{"invalid chunk size"}
	}
	return n, nil
}

// skipTrailers reads trailer lines up to the blank line.
func skipTrailers(br *bufio.Reader) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// discardBody reads and drops a response body; it reports whether the connection can be reused.
func discardBody(c *upConn, h *respHead, noBody bool) (bool, error) {
	br := c.br
	switch {
	case noBody:
	case h.chunked:
		for {
			n, err := readChunkSize(br)
			if err != nil {
				return false, err
			}
			if n == 0 {
				if err := skipTrailers(br); err != nil {
					return false, err
				}
				break
			}
			if _, err := br.Discard(int(n)); err != nil {
				return false, err
			}
			if _, err := readLine(br); err != nil {
				return false, err
			}
		}
	case h.contentLength >= 0:
		if _, err := br.Discard(int(h.contentLength)); err != nil {
			return false, err
		}
	default:
		_, err := io.Copy(io.Discard, br)
		return false, err
	}
	return !h.close, nil
}
