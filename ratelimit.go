package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// tokenBucket allows rate events per second on average and burst at once.
// It is used by one goroutine only. A rate <= 0 allows everything.
type tokenBucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newTokenBucket(rate float64, burst int) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// allow takes a token at time now, if there is one.
func (b *tokenBucket) allow(now time.Time) bool { return b.take(now, 1) }

// take takes n tokens at time now, if there are so many.
func (b *tokenBucket) take(now time.Time, n float64) bool {
	if b.rate <= 0 {
		return true
	}
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// abuseFactor: a connection whose refused commands outrun the rate limit by
// this many bursts is closed with 1008.
const abuseFactor = 5

// commandLimiter meters one connection's commands. Refused commands are
// metered in turn: they are forgiven at the command rate, so a client that
// merely sends too fast is slowed down, while one that keeps flooding (more
// than abuseFactor x burst refusals beyond that) is disconnected.
type commandLimiter struct {
	commands, refusals tokenBucket
}

func newCommandLimiter(s Settings) *commandLimiter {
	return &commandLimiter{
		commands: newTokenBucket(s.CommandRate, s.CommandBurst),
		refusals: newTokenBucket(s.CommandRate, abuseFactor*s.CommandBurst),
	}
}

// check reports whether a command at time now may run and, if not, whether
// the connection has been refused so often that it must be closed.
func (l *commandLimiter) check(now time.Time) (ok, abuse bool) {
	if l.commands.allow(now) {
		return true, false
	}
	return false, !l.refusals.allow(now)
}

// connLimiter counts WebSocket connections per client address. The zero
// value with max 0 has no limit.
type connLimiter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// acquire counts one more connection from ip, unless ip is at the limit.
func (l *connLimiter) acquire(ip string) bool {
	if l.max <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip] >= l.max {
		return false
	}
	if l.n == nil {
		l.n = make(map[string]int)
	}
	l.n[ip]++
	return true
}

// release counts one connection from ip less.
func (l *connLimiter) release(ip string) {
	if l.max <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip]--; l.n[ip] <= 0 {
		delete(l.n, ip)
	}
}

// clientIP is the address the request came from: the peer of the TCP
// connection. Forwarding headers are not trusted, so behind a reverse proxy
// all clients share the proxy's address; keep the limit off there.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
