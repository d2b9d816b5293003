package centrifugo_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/bench/internal/centrifugo"
	"github.com/tarsws/websocketserver/bench/internal/load"
)

// buildEnv, set to 1, lets the test build Centrifugo when it is not in the
// cache yet (minutes, and the module proxy must be reachable).
const buildEnv = "WSBENCH_CENTRIFUGO_BUILD"

// binary returns the cached Centrifugo, building it only if buildEnv asks.
func binary(t *testing.T) string {
	bin, err := centrifugo.Bin()
	if err != nil {
		t.Skipf("no cache directory for Centrifugo: %v", err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if os.Getenv(buildEnv) != "1" {
		t.Skipf("Centrifugo %s is not built yet (%s); `go run ./cmd/bench -servers centrifugo` or %s=1 builds it", centrifugo.Version, bin, buildEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if bin, err = centrifugo.Build(ctx); err != nil {
		t.Skipf("cannot build Centrifugo %s: %v", centrifugo.Version, err)
	}
	return bin
}

// start runs Centrifugo on a free loopback port until the test ends.
func start(t *testing.T) (addr string, pid int) {
	bin := binary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.json")
	if err := os.WriteFile(conf, centrifugo.Config(port), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "centrifugo.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "--config", conf)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("Centrifugo did not exit within 10s of SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("centrifugo log:\n%s", b)
		}
	})
	addr = "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr, cmd.Process.Pid
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("Centrifugo exited before listening: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Centrifugo not listening after 15s")
		}
	}
}

// A few clients connect with the JSON protocol, subscribe, and receive
// every publication made through the HTTP API (two channels), every
// in-band publish, and its reply; connect cycles close cleanly.
func TestCentrifugoDeliversEverything(t *testing.T) {
	addr, pid := start(t)
	for _, cfg := range []load.Config{
		{Mode: load.ModeHTTP, Conns: 6, Rooms: 2, Rate: 20},
		{Mode: load.ModeBroadcast, Conns: 4, Rooms: 1, Rate: 10},
		{Mode: load.ModeIdle, Conns: 5, Rooms: 5},
		{Mode: load.ModeChurn, Rooms: 1, Rate: 20},
	} {
		t.Run(cfg.Mode, func(t *testing.T) {
			cfg.Proto = load.ProtoCentrifugo
			cfg.WS, cfg.HTTP, cfg.PID = "ws://"+addr+"/connection/websocket", "http://"+addr, pid
			cfg.MaxDrain = 5 * time.Second
			if cfg.Mode != load.ModeIdle {
				cfg.Duration = time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := load.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if why := res.Failed(); why != "" || res.Unknown != 0 {
				t.Fatalf("%s; %d unknown frames (%s)", why, res.Unknown, res.Notes)
			}
			if cfg.Mode == load.ModeChurn {
				if want := int64(cfg.Rate * cfg.Duration.Seconds()); res.Cycles != want {
					t.Errorf("%d connect cycles, want %d", res.Cycles, want)
				}
				return
			}
			perPush := int64(cfg.Conns / cfg.Rooms)
			if cfg.Mode == load.ModeBroadcast {
				perPush = int64(cfg.Conns)
				if res.Replies != res.Pushes {
					t.Errorf("%d replies to %d publish commands", res.Replies, res.Pushes)
				}
			}
			if res.Pushes == 0 || res.Expected != res.Pushes*perPush || res.Delivered != res.Expected {
				t.Errorf("pushes %d, expected %d (%d each), delivered %d", res.Pushes, res.Expected, perPush, res.Delivered)
			}
			t.Logf("%d pushes, %d delivered, p99 %.0f µs", res.Pushes, res.Delivered, res.P99)
		})
	}
}
