// Command scalegen holds one node's share of the scale scenario's
// connections (package scale): it connects, prints "ready", reads the
// pushes that succeeded as one JSON line on stdin, prints its report as one
// JSON line, and closes its connections when stdin ends. cmd/bench -scale
// runs one per node.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/tarsws/websocketserver/bench/internal/scale"
)

func main() {
	var cfg scale.HoldConfig
	flag.IntVar(&cfg.Nodes, "nodes", 6, "nodes in the cluster")
	flag.IntVar(&cfg.Conns, "conns", 100000, "connections over all nodes")
	flag.IntVar(&cfg.Rooms, "rooms", 1000, "small rooms over all nodes")
	flag.IntVar(&cfg.Node, "node", 0, "the node whose connections this process holds, from 0")
	addr := flag.String("addr", "", "that node's HOST:PORT")
	flag.StringVar(&cfg.Source, "source", "", "local address to connect from (e.g. 127.0.0.11)")
	flag.IntVar(&cfg.Dialers, "dialers", 16, "connection attempts in flight")
	flag.DurationVar(&cfg.Drain, "drain", 0, "give up on missing messages after this long without progress (default 5s)")
	flag.Parse()
	if flag.NArg() > 0 || *addr == "" || cfg.Node < 0 || cfg.Node >= cfg.Nodes || cfg.Rooms < cfg.Nodes || cfg.Conns < cfg.Rooms {
		fmt.Fprintln(os.Stderr, "scalegen: want -addr, 0 <= -node < -nodes <= -rooms <= -conns and no arguments")
		os.Exit(2)
	}
	cfg.WS = "ws://" + *addr + "/"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := scale.Hold(ctx, cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scalegen:", err)
		os.Exit(1)
	}
}
