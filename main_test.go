package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunServesUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--data=" + dir}, w)
		w.Close()
	}()

	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(line, "open http://")
	if !ok || !strings.HasSuffix(line, "/client1.html and /client2.html\n") {
		t.Fatalf("banner %q", line)
	}
	addr, _, _ = strings.Cut(addr, "/")
	go io.Copy(io.Discard, out)

	resp, err := http.Get("http://" + addr + "/Index/index")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := readResponse(t, resp); code != 200 || body != "index success!!" {
		t.Fatalf("GET /Index/index = %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel = %v, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rooms")); err != nil {
		t.Fatalf("the room store is not under --data: %v", err)
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--config=WebsocketServer.conf"},
		{"--config", "WebsocketServer.conf"},
		{"-config", "x"},
	} {
		var out strings.Builder
		err := run(context.Background(), args, &out)
		var u usageError
		if !errors.As(err, &u) || u.msg != "config files are not supported yet" {
			t.Errorf("run(%q) = %v, want the config usage error", args, err)
		}
	}
	var out strings.Builder
	err := run(context.Background(), []string{"--no-such-flag"}, &out)
	if !errors.As(err, new(usageError)) || !strings.Contains(out.String(), "flag provided but not defined: -no-such-flag") {
		t.Errorf("unknown flag: %v, output %q", err, out.String())
	}
	err = run(context.Background(), []string{"extra"}, &out)
	if !errors.As(err, new(usageError)) || err.Error() != `unexpected argument "extra"` {
		t.Errorf("extra argument: %v", err)
	}
}
