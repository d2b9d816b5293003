// Package serve runs a reference server's handler as a command: listen,
// serve, stop on SIGTERM or SIGINT.
package serve

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	rpprof "runtime/pprof"
	"syscall"
	"time"
)

// Main parses -addr and -cpuprofile, serves h (with /debug/pprof/ beside
// it) and returns when a signal asks it to stop.
func Main(name string, h http.Handler) {
	addr := flag.String("addr", "127.0.0.1:18080", "address to listen on")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if err := run(name, *addr, *cpuprofile, h); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(name, addr, cpuprofile string, h http.Handler) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := rpprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer rpprof.StopCPUProfile()
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Printf("%s listening on %s (GOMAXPROCS %d)\n", name, ln.Addr(), runtime.GOMAXPROCS(0))
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Hijacked WebSocket connections are not the server's to close: the
	// process exit ends them.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}
