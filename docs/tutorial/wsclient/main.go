// Command wsclient is the tutorial's WebSocket client: it connects, sends
// each FRAME, prints every text frame it receives, one a line, and exits
// after N of them.
//
//	go run ./docs/tutorial/wsclient [-n N] [-t TIMEOUT] URL [FRAME...]
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"time"

	"golang.org/x/net/websocket"
)

func main() {
	n := flag.Int("n", 1, "exit after printing this many frames")
	// Long enough for a client waiting in the background to outlive the next
	// step, which may compile the server first (go run).
	timeout := flag.Duration("t", time.Minute, "give up after this long")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: wsclient [-n N] [-t TIMEOUT] URL [FRAME...]")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Args()[1:], *n, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "wsclient:", err)
		os.Exit(1)
	}
}

func run(rawURL string, frames []string, n int, timeout time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	// The server accepts pages from its own host, as a browser would send.
	ws, err := websocket.Dial(rawURL, "", "http://"+u.Host)
	if err != nil {
		return err
	}
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(timeout))
	for _, f := range frames {
		if err := websocket.Message.Send(ws, f); err != nil {
			return fmt.Errorf("send %q: %w", f, err)
		}
	}
	for i := 0; i < n; i++ {
		var msg string
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("got %d of %d frames within %v", i, n, timeout)
			}
			return err
		}
		fmt.Println(msg)
	}
	return nil
}
