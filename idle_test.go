package main

import (
	"net/http"
	"slices"
	"testing"
)

// TestIdleConnectionMemory opens 1,000 connections to the server binary, each subscribed to one
// room, and reads the server's RSS: an idle connection must not keep net/http's buffers or a grown
// stack. Then one push checks that every connection still receives.
func TestIdleConnectionMemory(t *testing.T) {
	if slices.Contains(buildFlags, "-race") {
		t.Skip("the race detector multiplies the server's memory; run without -race")
	}
	const conns, maxKiB = 1000, 16
	p := startProc(t, procOpts{})
	pid := p.cmd.Process.Pid
	rss0 := clusterRSS(t, pid)
	members := make([]*rawConn, conns)
	for i := range members {
		members[i] = p.rawWS(t)
		members[i].subscribe("room1")
	}
	rss1 := clusterRSS(t, pid)
	perConn := float64(rss1-rss0) / conns / 1024
	t.Logf("%d idle connections: RSS %d MiB before, %d MiB after, %.1f KiB per connection", conns, rss0>>20, rss1>>20, perConn)
	if perConn > maxKiB {
		t.Errorf("%.1f KiB per idle connection, want at most %d", perConn, maxKiB)
	}
	resp, err := http.Get("http://" + p.http + "/Index/pushByRoom?roomNum=room1&message=still+here")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := readResponse(t, resp); code != 200 {
		t.Fatalf("push: %d %s", code, body)
	}
	for i, m := range members {
		if got := m.text(); got != "still here" {
			t.Fatalf("connection %d got %q", i, got)
		}
	}
}
