package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/bench/internal/gorillaref"
)

// Connections and pushes are spread over the nodes of a cluster; here two
// listeners share one hub, as nodes share rooms.
func TestNodesSpreadLoad(t *testing.T) {
	h := gorillaref.NewHub()
	go h.Run()
	var upgrades, pushes [2]atomic.Int64
	var urls [2]string
	for i := range urls {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				upgrades[i].Add(1)
			}
			if r.URL.Path == "/Index/pushByRoom" {
				pushes[i].Add(1)
			}
			h.Handler().ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		urls[i] = srv.URL
	}
	cfg := Config{
		WS: "ws" + strings.TrimPrefix(urls[0], "http") + "/", HTTP: urls[0], Nodes: urls[1:],
		Mode: ModeHTTP, Conns: 10, Rooms: 1, Rate: 40, Duration: 500 * time.Millisecond,
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if why := res.Failed(); why != "" {
		t.Fatalf("%s (%s)", why, res.Notes)
	}
	p0, p1 := pushes[0].Load(), pushes[1].Load()
	if upgrades[0].Load() != 5 || upgrades[1].Load() != 5 || p0+p1 != res.Pushes || p0-p1 > 1 || p1 > p0 {
		t.Errorf("connections %d and %d, pushes %d and %d of %d; want 5 each and the pushes in turn",
			upgrades[0].Load(), upgrades[1].Load(), p0, p1, res.Pushes)
	}
	bad := cfg
	bad.Nodes = []string{"127.0.0.1:1"}
	if _, err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "want http://HOST:PORT") {
		t.Errorf("node without scheme: %v", err)
	}
}
