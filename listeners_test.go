package main

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// acceptor runs Accept on l in the background and hands over what it gets.
func acceptor(t *testing.T, l *limitListener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return ch
}

func limitTest(t *testing.T, allow []string, maxConns int) (*limitListener, *syncBuffer) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	l, err := newLimitListener(inner, "A.B.objAdapter", allow, maxConns, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return l, logs
}

// closedByPeer reports whether c is closed from the other side.
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && err != nil && !strings.Contains(err.Error(), "timeout")
}

func dialT(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLimitListenerAllow(t *testing.T) {
	l, logs := limitTest(t, []string{"127.0.0.2", " ::ffff:10.0.0.1 "}, 0)
	accepted := acceptor(t, l)
	if c := dialT(t, l.Addr()); !closedByPeer(t, c) {
		t.Error("127.0.0.1 was not refused")
	}
	if l.denied.Load() != 1 || !strings.Contains(logs.String(), "address not in the allow list") {
		t.Errorf("denied %d, log %q", l.denied.Load(), logs.String())
	}

	l2, _ := limitTest(t, []string{"127.0.0.1"}, 0)
	accepted = acceptor(t, l2)
	dialT(t, l2.Addr())
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("127.0.0.1 was not accepted with allow=127.0.0.1")
	}

	_, err := newLimitListener(l.Listener, "A.B.objAdapter", []string{"localhost"}, 0, slog.Default())
	if err == nil || err.Error() != `adapter A.B.objAdapter: allow: "localhost" is not an IP address` {
		t.Errorf("allow=localhost: %v", err)
	}
}

func TestLimitListenerMaxConns(t *testing.T) {
	l, logs := limitTest(t, nil, 1)
	accepted := acceptor(t, l)
	dialT(t, l.Addr())
	first := <-accepted
	if c := dialT(t, l.Addr()); !closedByPeer(t, c) {
		t.Fatal("a second connection was accepted with maxconns=1")
	}
	if l.refused.Load() != 1 || l.conns.Load() != 1 || !strings.Contains(logs.String(), "maxconns reached") {
		t.Errorf("refused %d, conns %d, log %q", l.refused.Load(), l.conns.Load(), logs.String())
	}
	// Closing twice frees the slot once.
	first.Close()
	first.Close()
	if n := l.conns.Load(); n != 0 {
		t.Fatalf("conns %d after close", n)
	}
	dialT(t, l.Addr())
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the freed slot was not reused")
	}
}
