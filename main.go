// Command websocketserver is a WebSocket chat-room and push server for the
// Tars ecosystem. Browsers join rooms over WebSocket; pages, HTTP calls and
// Tars services push messages to a room or to everyone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	var u usageError
	switch {
	case err == nil:
	case errors.As(err, &u):
		if u.msg != "" {
			fmt.Fprintln(os.Stderr, u.msg)
		}
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "websocketserver:", err)
		os.Exit(1)
	}
}

// usageError means the command line was wrong: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// shutdownTimeout bounds how long queued frames may take to flush on exit.
const shutdownTimeout = 5 * time.Second

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("websocketserver", flag.ContinueOnError)
	flags.SetOutput(stdout)
	config := flags.String("config", "", "Tars config file")
	listen := flags.String("listen", "127.0.0.1:18080", "address to listen on")
	dataDir := flags.String("data", "data", "directory for room membership and history")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{}
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", flags.Arg(0))}
	}
	if *config != "" {
		return usageError{"config files are not supported yet"}
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := newServer(DefaultSettings(), *dataDir, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	fmt.Fprintf(stdout, "open http://%s/client1.html and /client2.html\n", ln.Addr())

	select {
	case err := <-served:
		srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = errors.Join(httpSrv.Shutdown(sctx), srv.Shutdown(sctx))
	<-served
	return err
}
