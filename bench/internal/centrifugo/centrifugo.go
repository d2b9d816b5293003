// Package centrifugo builds Centrifugo, the server a Go team would most
// likely pick instead of the product, from the Go module proxy, and
// writes its configuration for the bench: loopback only, no tokens, the
// HTTP API open, nothing that reaches the network.
package centrifugo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Version is the release the bench runs against.
const Version = "v6.9.1"

const module = "github.com/centrifugal/centrifugo/v6"

// Bin is where the built binary lives: the user's cache directory, so it
// is built once per version and never lands in the repository.
func Bin() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "websocketserver-bench", "centrifugo-"+Version, "bin", "centrifugo"), nil
}

// Build returns Bin, running `go install module@Version` into its
// directory first unless it is already there. The first build downloads
// and compiles a few hundred modules: minutes.
func Build(ctx context.Context) (string, error) {
	bin, err := Bin()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "install", module+"@"+Version)
	// Outside any module, with no flag of the caller's (-mod=readonly
	// would be refused) and no workspace.
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin), "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", module, Version, err, tail(out, 2000))
	}
	return bin, nil
}

func tail(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// Config is the configuration file for a server on 127.0.0.1:port with
// its defaults otherwise (memory engine, websocket write timeout 1s, ping
// every 25s) and:
//   - client.insecure: connect without a JWT, subscribe to any channel,
//     publish into it (the in-band broadcast);
//   - http_api.insecure: POST /api/publish without a key;
//   - debug.enabled: /debug/pprof/ on the same port, so the generator can
//     count goroutines as it does for the reference servers;
//   - usage_stats.disabled: it would otherwise report to the network.
func Config(port int) []byte {
	return fmt.Appendf(nil, `{
  "http_server": {"address": "127.0.0.1", "port": %d},
  "client": {"insecure": true},
  "http_api": {"insecure": true},
  "debug": {"enabled": true},
  "usage_stats": {"disabled": true},
  "log": {"level": "warn"}
}
`, port)
}
