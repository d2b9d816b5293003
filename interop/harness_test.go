package interop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TarsCloud/TarsGo/tars"
)

// workDir holds the binaries the tests build and the in-process TarsGo
// client's config; it lives for the whole test run.
var workDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "interop")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	// TarsGo's clients in this process read a config once: without one they
	// would parse the test binary's flags and log at DEBUG to stdout.
	conf := filepath.Join(dir, "client.conf")
	err = os.WriteFile(conf, []byte(`<tars>
  <application>
    <client>
      async-invoke-timeout=3000
    </client>
    <server>
      logLevel=ERROR
      logpath=`+filepath.Join(dir, "log")+`
    </server>
  </application>
</tars>
`), 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tars.ServerConfigPath = conf
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles the package pkg (relative to this directory) once per run.
var builds sync.Map // pkg -> func() (string, error)

func build(t *testing.T, pkg, name string) string {
	t.Helper()
	f, _ := builds.LoadOrStore(pkg, sync.OnceValues(func() (string, error) {
		out := filepath.Join(workDir, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return out, nil
	}))
	bin, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// event is one JSON line a process printed.
type event map[string]any

func (e event) str(k string) string { s, _ := e[k].(string); return s }

func (e event) num(k string) float64 { n, _ := e[k].(float64); return n }

// proc is a started subprocess whose stdout lines are collected.
type proc struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced when a line arrives or the process ends
	done    bool          // the process has ended; exitErr is its Wait error
	exitErr error
	stderr  strings.Builder
}

// start runs cmd, collecting its stdout; the process is killed when the test
// ends.
func start(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, changed: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.notify()
			p.mu.Unlock()
		}
		err := cmd.Wait()
		p.mu.Lock()
		p.done, p.exitErr = true, err
		p.notify()
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s stdout:\n%s\nstderr:\n%s", filepath.Base(cmd.Path), strings.Join(p.lines, "\n"), p.stderr.String())
			p.mu.Unlock()
		}
	})
	return p
}

// notify wakes the waiters; p.mu is held.
func (p *proc) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// exited reports whether the process has ended, with its exit code.
func (p *proc) exited() (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		return false, 0
	}
	return true, p.cmd.ProcessState.ExitCode()
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// waitEvent waits up to timeout for a JSON line for which match is true,
// looking at lines from index from on; it returns the event and the index
// after it.
func (p *proc) waitEvent(t *testing.T, from int, timeout time.Duration, what string, match func(event) bool) (event, int) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			var e event
			if json.Unmarshal([]byte(p.lines[i]), &e) == nil && match(e) {
				p.mu.Unlock()
				return e, i + 1
			}
		}
		from = len(p.lines)
		done, changed := p.done, p.changed
		p.mu.Unlock()
		if done {
			t.Fatalf("waiting for %s: process ended", what)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func (p *proc) waitFn(t *testing.T, from int, peer, fn string, match func(event) bool) (event, int) {
	t.Helper()
	return p.waitEvent(t, from, 10*time.Second, peer+" "+fn, func(e event) bool {
		return e.str("peer") == peer && e.str("fn") == fn && (match == nil || match(e))
	})
}

// Peers is a running tarsgopeers process.
type Peers struct {
	*proc
	Addr map[string]string // servant -> host:port
}

// Endpoint is the servant's endpoint string.
func (p *Peers) Endpoint(servant string) string {
	host, port, _ := net.SplitHostPort(p.Addr[servant])
	return fmt.Sprintf("tcp -h %s -p %s -t 60000", host, port)
}

// Proxy is the servant's direct proxy string.
func (p *Peers) Proxy(servant string) string { return servant + "@" + p.Endpoint(servant) }

// PeersOptions configure startPeers.
type PeersOptions struct {
	ConfigDir string            // served by ConfigObj
	Registry  map[string]string // object id -> endpoints, for QueryObj
	// RegisterSelf adds every hosted servant to the registry under its own
	// name, as a real registry knows the framework services.
	RegisterSelf bool
}

// Servant names the peers program hosts (see cmd/tarsgopeers).
const (
	peerHello    = "TestApp.HelloGo.HelloObj"
	peerOrder    = "TestApp.OrderGo.OrderObj"
	peerHook     = "TestApp.HookGo.HookObj"
	peerNode     = "tars.tarsnode.ServerObj"
	peerQuery    = "tars.tarsregistry.QueryObj"
	peerConfig   = "tars.tarsconfig.ConfigObj"
	peerStat     = "tars.tarsstat.StatObj"
	peerProperty = "tars.tarsproperty.PropertyObj"
	peerNotify   = "tars.tarsnotify.NotifyObj"
	peerLog      = "tars.tarslog.LogObj"
)

var allPeers = []string{peerHello, peerNode, peerQuery, peerConfig, peerStat, peerProperty, peerNotify, peerLog}

// startPeers starts tarsgopeers hosting servants. The test binds each
// listener on 127.0.0.1:0 and hands it over as an inherited descriptor,
// which TarsGo picks up by address: no port can be taken in between.
func startPeers(t *testing.T, opt PeersOptions, servants ...string) *Peers {
	t.Helper()
	bin := build(t, "./cmd/tarsgopeers", "tarsgopeers")
	dir := t.TempDir()
	registry := maps.Clone(opt.Registry)
	if registry == nil {
		registry = map[string]string{}
	}
	var conf strings.Builder
	conf.WriteString("<tars>\n  <application>\n    <server>\n      app=tars\n      server=peers\n      logLevel=ERROR\n")
	fmt.Fprintf(&conf, "      logpath=%s\n      datapath=%s\n", dir, dir)
	cmd := exec.Command(bin, "--config="+filepath.Join(dir, "peers.conf"))
	cmd.Env = os.Environ()
	for i, s := range servants {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		addr := ln.Addr().(*net.TCPAddr)
		if opt.RegisterSelf {
			registry[s] = fmt.Sprintf("tcp -h 127.0.0.1 -p %d -t 60000", addr.Port)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		cmd.Env = append(cmd.Env, fmt.Sprintf("LISTEN_FD_INHERIT_tcp_127.0.0.1:%d=%d", addr.Port, 3+i))
		fmt.Fprintf(&conf, "      <%sAdapter>\n        endpoint=tcp -h 127.0.0.1 -p %d -t 60000\n        servant=%s\n        protocol=tars\n        threads=1\n      </%sAdapter>\n",
			s, addr.Port, s, s)
	}
	conf.WriteString("    </server>\n  </application>\n  <peers>\n")
	fmt.Fprintf(&conf, "    configdir=%s\n    <registry>\n", opt.ConfigDir)
	for id, eps := range registry {
		fmt.Fprintf(&conf, "      %s=%s\n", id, eps)
	}
	conf.WriteString("    </registry>\n  </peers>\n</tars>\n")
	if err := os.WriteFile(filepath.Join(dir, "peers.conf"), []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Peers{proc: start(t, cmd), Addr: map[string]string{}}
	ready, _ := p.waitEvent(t, 0, 20*time.Second, "peers ready line", func(e event) bool { return e.str("peer") == "ready" })
	adapters, _ := ready["adapters"].(map[string]any)
	for _, s := range servants {
		a, _ := adapters[s].(string)
		if a == "" {
			t.Fatalf("ready line lacks %s: %v", s, ready)
		}
		p.Addr[s] = a
	}
	return p
}
