package load

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tarsws/websocketserver/bench/internal/gorillaref"
	"github.com/tarsws/websocketserver/bench/internal/raw"
)

func TestStampRoundTrip(t *testing.T) {
	g := &gen{cfg: Config{Size: 64}, base: time.Now().Add(-time.Hour)}
	msg := g.message(12345)
	if len(msg) != 64 {
		t.Fatalf("message %q: %d bytes, want 64", msg, len(msg))
	}
	seq, stamp, ok := parseStamp([]byte(msg))
	if !ok || seq != 12345 || stamp < int64(time.Hour) || stamp > g.now() {
		t.Errorf("parseStamp(%q) = %d, %d, %v", msg, seq, stamp, ok)
	}
	for _, bad := range []string{"", "m", "m1", "m1.", "m1.2", "mx.2.", "m1..", "Subscribe roomNum:r0 success!", "m99999999999999999999999.1."} {
		if _, _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%q) accepted", bad)
		}
	}
}

func servers() map[string]http.Handler {
	h := gorillaref.NewHub()
	go h.Run()
	return map[string]http.Handler{"gorilla": h.Handler(), "raw": new(raw.Server).Handler()}
}

func start(t *testing.T, h http.Handler) Config {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	return Config{WS: "ws://" + addr + "/", HTTP: srv.URL, PID: os.Getpid(), Duration: 500 * time.Millisecond}
}

// Every mode against both references: all owed messages arrive, counted
// exactly once, and the figures add up.
func TestEveryModeDeliversEverything(t *testing.T) {
	for name, h := range servers() {
		for _, cfg := range []Config{
			{Mode: ModeHTTP, Conns: 20, Rooms: 1, Rate: 40},
			{Mode: ModeHTTP, Conns: 30, Rooms: 10, Rate: 100},
			{Mode: ModeInband, Conns: 20, Rooms: 4, Rate: 40},
			{Mode: ModeBroadcast, Conns: 10, Rooms: 1, Rate: 20},
			{Mode: ModeIdle, Conns: 25, Rooms: 5},
			{Mode: ModeChurn, Rooms: 1, Rate: 50},
		} {
			t.Run(name+"/"+cfg.Mode, func(t *testing.T) {
				base := start(t, h)
				cfg.WS, cfg.HTTP, cfg.PID = base.WS, base.HTTP, base.PID
				if cfg.Mode != ModeIdle {
					cfg.Duration = base.Duration
				}
				res, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				if why := res.Failed(); why != "" {
					t.Fatalf("%s (%s)", why, res.Notes)
				}
				if res.Unknown != 0 {
					t.Errorf("%d unknown frames", res.Unknown)
				}
				switch cfg.Mode {
				case ModeChurn:
					if want := int64(cfg.Rate * cfg.Duration.Seconds()); res.Cycles != want {
						t.Errorf("%d churn cycles, want %d", res.Cycles, want)
					}
					return
				case ModeIdle:
					if res.RSSAfter <= 0 {
						t.Errorf("idle: RSS after %d", res.RSSAfter)
					}
				}
				perPush := int64(cfg.Conns / cfg.Rooms)
				if cfg.Mode == ModeBroadcast {
					perPush = int64(cfg.Conns)
				}
				if res.Pushes == 0 || res.Expected != res.Pushes*perPush || res.Delivered != res.Expected {
					t.Errorf("pushes %d, expected %d (want %d each), delivered %d", res.Pushes, res.Expected, perPush, res.Delivered)
				}
				if inband := cfg.Mode == ModeInband || cfg.Mode == ModeBroadcast; inband && res.Replies != res.Pushes {
					t.Errorf("%d replies to %d in-band pushes", res.Replies, res.Pushes)
				}
				if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
					t.Errorf("latency p50 %v, p99 %v, max %v µs", res.P50, res.P99, res.Max)
				}
			})
		}
	}
}

// A server that acknowledges everything and delivers nothing: every owed
// message counts as lost.
func TestLossIsReported(t *testing.T) {
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if room, ok := strings.CutPrefix(string(p), "subscribe|"); ok {
				c.WriteMessage(websocket.TextMessage, []byte("Subscribe roomNum:"+room+" success!"))
			}
		}
	})
	mux.HandleFunc("/Index/pushByRoom", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pushBy room success")
	})
	cfg := start(t, mux)
	cfg.Mode, cfg.Conns, cfg.Rate, cfg.Drain = ModeHTTP, 5, 20, 200*time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pushes == 0 || res.Lost != res.Pushes*5 || res.Delivered != 0 || res.Failed() == "" {
		t.Errorf("pushes %d, lost %d, delivered %d, Failed() %q: want all %d lost", res.Pushes, res.Lost, res.Delivered, res.Failed(), res.Pushes*5)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Mode: "carrier-pigeon"}, "unknown mode"},
		{Config{Mode: ModePushObj}, "no PushObj proxy"},
		{Config{Mode: ModePushObj, Push: "P@tcp -h 127.0.0.1 -p 1", Nodes: []string{"http://127.0.0.1:1"}}, "one PushObj"},
		{Config{Mode: ModePushObj, Push: "NoEndpoint", Conns: 1, Rate: 1, Duration: time.Second}, "no endpoints"},
		{Config{Mode: ModeHTTP, Conns: 2, Rooms: 3, Rate: 1, Duration: time.Second}, "every room needs a member"},
		{Config{Mode: ModeHTTP, Conns: 2, Rate: 0, Duration: time.Second}, "rate"},
		{Config{Mode: ModeHTTP, Conns: 2, Rate: 1, Duration: time.Second, Size: 10}, "size"},
	} {
		_, err := Run(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want one containing %q", c.cfg, err, c.want)
		}
	}
}

func TestUnreachableServer(t *testing.T) {
	cfg := start(t, http.NotFoundHandler())
	cfg.Mode, cfg.Conns, cfg.Rate = ModeHTTP, 3, 10
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), " of 3: ") {
		t.Errorf("err = %v, want a dial error naming the connection", err)
	}
}
