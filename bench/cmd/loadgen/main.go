// Command loadgen drives one scenario against a running chat/push server
// and prints what it measured as one JSON object.
//
//	loadgen -addr 127.0.0.1:18080 -pid 1234 -mode http -conns 5000 -rate 200 -duration 20s
//	loadgen -addr 127.0.0.1:18080 -push 127.0.0.1:18082 -mode pushobj -conns 1000 -rooms 100 -rate 500
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"

	"github.com/tarsws/websocketserver/bench/internal/load"
)

func main() {
	var cfg load.Config
	addr := flag.String("addr", "127.0.0.1:18080", "server address (HOST:PORT)")
	flag.StringVar(&cfg.Scenario, "scenario", "", "scenario name for the report")
	flag.StringVar(&cfg.Mode, "mode", load.ModeHTTP, "http, inband, broadcast, pushobj, churn or idle")
	flag.StringVar(&cfg.Proto, "proto", load.ProtoChat, "protocol: centrifugo (its JSON protocol on /connection/websocket, pushes by POST /api/publish), or empty for the chat protocol")
	flag.IntVar(&cfg.Conns, "conns", 100, "connections held open")
	flag.IntVar(&cfg.Rooms, "rooms", 1, "rooms the connections are spread over")
	flag.Float64Var(&cfg.Rate, "rate", 100, "pushes per second (churn: connect cycles per second)")
	flag.DurationVar(&cfg.Duration, "duration", 0, "length of the push phase (default 10s)")
	flag.IntVar(&cfg.Size, "size", 64, "bytes per message, stamp included")
	flag.IntVar(&cfg.PID, "pid", 0, "server process whose CPU time and memory to read (0: none)")
	flag.DurationVar(&cfg.Drain, "drain", 0, "give up on missing messages after this long without progress (default 3s)")
	flag.DurationVar(&cfg.Settle, "settle", 0, "wait after connecting before reading memory")
	flag.IntVar(&cfg.Dialers, "dialers", 0, "connection attempts in flight (default 32)")
	flag.IntVar(&cfg.Workers, "workers", 0, "pushes or churn cycles in flight (default 16)")
	flag.IntVar(&cfg.Window, "window", 0, "hold pushes back while more than this many pushes' deliveries are owed (0: open loop)")
	flag.DurationVar(&cfg.MaxDrain, "max-drain", 0, "longest wait for the last messages in all (default 20s)")
	flag.StringVar(&cfg.Pprof, "pprof", "", "HOST:PORT of the server's /debug/pprof/ (default -addr)")
	flag.StringVar(&cfg.ProfileDir, "profile", "", "save heap.pprof, heap.txt and goroutines.txt (connected) and cpu.pprof (measured phase) from -pprof to this directory")
	push := flag.String("push", "", "HOST:PORT of the server's PushObj adapter (mode pushobj)")
	pushObj := flag.String("push-obj", "TestApp.WebsocketServer.PushObj", "the PushObj servant name (mode pushobj)")
	nodes := flag.String("nodes", "", "comma-separated HOST:PORT of the cluster's other nodes: connections and pushes are spread over all nodes")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10e9
	}
	cfg.WS = "ws://" + *addr + "/"
	cfg.HTTP = "http://" + *addr
	if cfg.Proto == load.ProtoCentrifugo {
		cfg.WS += "connection/websocket"
	}
	if *push != "" {
		host, port, err := net.SplitHostPort(*push)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: -push %q: want HOST:PORT\n", *push)
			os.Exit(2)
		}
		cfg.Push = *pushObj + "@tcp -h " + host + " -p " + port
	}
	if *nodes != "" {
		for n := range strings.SplitSeq(*nodes, ",") {
			cfg.Nodes = append(cfg.Nodes, "http://"+n)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := load.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(res)
	if why := res.Failed(); why != "" {
		fmt.Fprintln(os.Stderr, "loadgen:", why)
		os.Exit(3)
	}
}
