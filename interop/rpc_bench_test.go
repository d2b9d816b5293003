package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tarsgo "github.com/TarsCloud/TarsGo/tars"

	"github.com/tarsws/websocketserver/interop/testapp"
	"github.com/tarsws/websocketserver/tars"
)

// BenchmarkRPC measures Tars calls from both clients (package tars's and
// TarsGo's) to both servers (the product's PushObj and the TarsGo Hello
// servant of tarsgopeers), each server in its own process: calls/s, and
// allocs/op of the calling side (this process). pushByRoom goes to a room
// with no members, so it measures the call, not deliveries. "par" runs
// 8×GOMAXPROCS callers at once over the client's shared connection.
func BenchmarkRPC(b *testing.B) {
	product := benchProduct(b)
	hello := benchHello(b)
	pushProxy := pushObj + "@" + endpointOf(product)
	helloProxy := peerHello + "@" + endpointOf(hello)

	ours := tars.NewClient(tars.ClientOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b.Cleanup(func() { ours.Close() })
	ourPush, err := ours.Proxy(pushProxy)
	if err != nil {
		b.Fatal(err)
	}
	ourHello, err := ours.Proxy(helloProxy)
	if err != nil {
		b.Fatal(err)
	}
	comm := tarsgo.NewCommunicator()
	goPush, goHello := new(testapp.Push), new(testapp.Hello)
	comm.StringToProxy(pushProxy, goPush)
	comm.StringToProxy(helloProxy, goHello)

	calls := []struct {
		name string
		call func() error
	}{
		{"ours-product-push", func() error { return ourPushByRoom(ourPush) }},
		{"tarsgo-product-push", func() error {
			var delivered int32
			ret, err := goPush.PushByRoom("bench-empty", "rpc benchmark message", &delivered)
			return check(ret, delivered, err)
		}},
		{"ours-tarsgo-hello", func() error {
			got, err := callHello(context.Background(), ourHello, 7, "bench")
			return checkHello(got, err)
		}},
		{"tarsgo-tarsgo-hello", func() error {
			got, err := goHello.Hello(7, "bench")
			return checkHello(got, err)
		}},
	}
	for _, c := range calls {
		// One call first: connections are opened outside the timing.
		if err := c.call(); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		b.Run(c.name+"/seq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.call(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
		b.Run(c.name+"/par", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			var once sync.Once
			var first error
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.call(); err != nil {
						once.Do(func() { first = err })
						return
					}
				}
			})
			if first != nil {
				b.Fatal(first)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

func ourPushByRoom(p *tars.ObjProxy) error {
	var ret, delivered int32
	err := p.Invoke(context.Background(), "pushByRoom",
		func(in *tars.Results) {
			in.PutString(1, "roomNum", "bench-empty")
			in.PutString(2, "message", "rpc benchmark message")
		},
		func(out *tars.Args) error {
			var err error
			if ret, err = out.Int32(0, ""); err != nil {
				return err
			}
			delivered, err = out.Int32(3, "delivered")
			return err
		})
	return check(ret, delivered, err)
}

func check(ret, delivered int32, err error) error {
	if err == nil && (ret != 0 || delivered != 0) {
		err = fmt.Errorf("pushByRoom(empty room) = %d, delivered %d; want 0, 0", ret, delivered)
	}
	return err
}

func checkHello(got string, err error) error {
	if want := "hello bench from TarsGo #7"; err == nil && got != want {
		err = fmt.Errorf("hello = %q, want %q", got, want)
	}
	return err
}

// runFor starts cmd and stops it when the benchmark ends. With line set,
// it hands line the process's stdout lines until line returns true, and
// fails if the process ends first; the rest of stdout is discarded. The
// returned channel is closed when the process has ended.
func runFor(b *testing.B, cmd *exec.Cmd, line func(string) bool) <-chan struct{} {
	b.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	matched := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		found := line == nil
		for sc.Scan() {
			if !found && line(sc.Text()) {
				found = true
				close(matched)
			}
		}
		cmd.Wait()
	}()
	b.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	if line == nil {
		return done
	}
	select {
	case <-matched:
	case <-done:
		b.Fatalf("%s ended before it was ready: %s", filepath.Base(cmd.Path), stderr.String())
	case <-time.After(20 * time.Second):
		b.Fatalf("%s not ready after 20s", filepath.Base(cmd.Path))
	}
	return done
}

// benchHello starts tarsgopeers hosting only the TarsGo Hello servant and
// returns its address.
func benchHello(b *testing.B) string {
	b.Helper()
	f, _ := builds.LoadOrStore("./cmd/tarsgopeers", sync.OnceValues(func() (string, error) {
		out := filepath.Join(workDir, "tarsgopeers")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/tarsgopeers")
		if o, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/tarsgopeers: %v\n%s", err, o)
		}
		return out, nil
	}))
	bin, err := f.(func() (string, error))()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer lf.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	conf := fmt.Sprintf(`<tars>
  <application>
    <server>
      app=tars
      server=peers
      logLevel=ERROR
      logpath=%[1]s
      datapath=%[1]s
      <%[2]sAdapter>
        endpoint=tcp -h 127.0.0.1 -p %[3]d -t 60000
        servant=%[2]s
        protocol=tars
        threads=1
      </%[2]sAdapter>
    </server>
  </application>
  <peers>
    configdir=%[1]s
    <registry>
    </registry>
  </peers>
</tars>
`, dir, peerHello, port)
	if err := os.WriteFile(filepath.Join(dir, "peers.conf"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--config="+filepath.Join(dir, "peers.conf"))
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Env = append(os.Environ(), fmt.Sprintf("LISTEN_FD_INHERIT_tcp_127.0.0.1:%d=3", port))
	var addr string
	runFor(b, cmd, func(l string) bool {
		var e struct {
			Peer     string
			Adapters map[string]string
		}
		if json.Unmarshal([]byte(l), &e) != nil || e.Peer != "ready" {
			return false
		}
		addr = e.Adapters[peerHello]
		return true
	})
	if addr == "" {
		b.Fatalf("tarsgopeers' ready line lacks %s", peerHello)
	}
	return addr
}

// benchProduct starts the product with its PushObj on a free port, logging
// errors only, and returns the PushObj address.
func benchProduct(b *testing.B) string {
	b.Helper()
	bin, err := productOnce()
	if err != nil {
		b.Fatal(err)
	}
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	dir := b.TempDir()
	admin, web, push := free(), free(), free()
	conf := fmt.Sprintf(`<tars>
  <application>
    <server>
      app=TestApp
      server=WebsocketServer
      localip=127.0.0.1
      local=%[1]s
      basepath=%[4]s/
      datapath=%[4]s/data/
      logpath=%[4]s/log/
      logLevel=ERROR
      <TestApp.WebsocketServer.objAdapter>
        endpoint=%[2]s
        protocol=not_tars
        servant=TestApp.WebsocketServer.obj
      </TestApp.WebsocketServer.objAdapter>
      <TestApp.WebsocketServer.PushObjAdapter>
        endpoint=%[3]s
        protocol=tars
        servant=TestApp.WebsocketServer.PushObj
      </TestApp.WebsocketServer.PushObjAdapter>
    </server>
    <websocket>
      store=memory
    </websocket>
  </application>
</tars>
`, endpointOf(admin), endpointOf(web), endpointOf(push), dir)
	confPath := filepath.Join(dir, "WebsocketServer.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--config="+confPath)
	cmd.Dir = dir
	exited := runFor(b, cmd, nil)
	// The product prints nothing when it is ready: wait for PushObj.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", push, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			b.Fatalf("product exited before listening on %s (config %s)", push, confPath)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("product never listened on %s (config %s): %v", push, confPath, err)
		}
	}
	return push
}
