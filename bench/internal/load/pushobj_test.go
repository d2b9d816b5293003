package load

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/bench/internal/gorillaref"
	"github.com/tarsws/websocketserver/tars"
)

// pushObjServer serves PushObj.pushByRoom over real Tars RPC, pushing
// through the gorilla reference's HTTP trigger; ret is what it returns
// at tag 0 (non-zero: nothing is pushed). It reports every call's room.
func pushObjServer(t *testing.T, h http.Handler, members int32, ret int32, rooms chan<- string) string {
	srv := &tars.Server{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv.Handle("Bench.Push.PushObj", "pushByRoom", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		room, err := in.String(1, "roomNum")
		if err != nil {
			return 0, err
		}
		msg, err := in.String(2, "message")
		if err != nil {
			return 0, err
		}
		select {
		case rooms <- room:
		default:
		}
		// The interface's return value is tag 0, like the product's.
		out.PutInt32(0, "", ret)
		if ret != 0 {
			out.PutInt32(3, "delivered", 0)
			return 0, nil
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/Index/pushByRoom?roomNum="+url.QueryEscape(room)+"&message="+url.QueryEscape(msg), nil))
		out.PutInt32(3, "delivered", members)
		return 0, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, tars.ListenOptions{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "Bench.Push.PushObj@tcp -h 127.0.0.1 -p " + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
}

// Mode pushobj: every push is a Tars call, every member receives it.
func TestPushObjDeliversEverything(t *testing.T) {
	h := gorillaref.NewHub()
	go h.Run()
	handler := h.Handler()
	rooms := make(chan string, 1000)
	cfg := start(t, handler)
	cfg.Mode, cfg.Conns, cfg.Rooms, cfg.Rate = ModePushObj, 30, 10, 100
	cfg.Push = pushObjServer(t, handler, 3, 0, rooms)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if why := res.Failed(); why != "" || res.Notes != "" {
		t.Fatalf("%s (%s)", why, res.Notes)
	}
	if res.Pushes == 0 || res.Delivered != res.Pushes*3 || res.Expected != res.Delivered || res.Unknown != 0 {
		t.Errorf("pushes %d, delivered %d, expected %d, unknown %d: want 3 deliveries per push",
			res.Pushes, res.Delivered, res.Expected, res.Unknown)
	}
	if got := len(rooms); int64(got) != res.Pushes {
		t.Errorf("server saw %d calls, generator counted %d pushes", got, res.Pushes)
	}
	seen := map[string]bool{}
	for range len(rooms) {
		seen[<-rooms] = true
	}
	if len(seen) != 10 {
		t.Errorf("calls went to %d rooms, want all 10: %v", len(seen), seen)
	}
}

// A PushObj that answers with a non-zero return fails every push, and the
// run says so.
func TestPushObjErrorReturn(t *testing.T) {
	h := gorillaref.NewHub()
	go h.Run()
	rooms := make(chan string, 1000)
	cfg := start(t, h.Handler())
	cfg.Mode, cfg.Conns, cfg.Rate, cfg.Drain = ModePushObj, 2, 20, 200*time.Millisecond
	cfg.Push = pushObjServer(t, h.Handler(), 2, -7, rooms)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	calls := int64(len(rooms))
	if res.Pushes != 0 || res.PushErrors == 0 || res.PushErrors != calls || res.Lost != 0 ||
		!strings.Contains(res.Failed(), "pushes failed") || !strings.Contains(res.Notes, "returned -7") {
		t.Errorf("pushes %d, push errors %d of %d calls, lost %d, Failed() %q, notes %q",
			res.Pushes, res.PushErrors, calls, res.Lost, res.Failed(), res.Notes)
	}
}
