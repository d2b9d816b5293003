package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tarsws/websocketserver/bench/internal/centrifugo"
	"github.com/tarsws/websocketserver/bench/internal/load"
)

// A server under test: how to start it on a fresh port.
type server struct {
	name  string // column name in the table
	start func(dir string) (*process, error)
	// cluster starts n nodes that share rooms; the first is returned with
	// the others in its more. nil: the server has no cluster.
	cluster func(dir string, n int) (*process, error)
	pushObj bool   // it serves PushObj (process.push)
	proto   string // the generator's -proto: "" for the chat protocol
}

type process struct {
	cmd    *exec.Cmd
	addr   string // HTTP and WebSocket
	log    string
	exited chan struct{} // closed when the process has been waited for
	pprof  string        // HOST:PORT serving /debug/pprof/, "" if none
	push   string        // HOST:PORT of the PushObj adapter, "" if none
	more   []*process    // the other nodes of a cluster, stopped with this one
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startProcess runs bin with args, output to dir/name.log, and waits until
// addr accepts connections.
func startProcess(dir, name, bin, addr string, env []string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, addr: addr, log: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before listening on %s (%s); see %s", name, addr, cmd.ProcessState, logPath)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s: nothing listening on %s after 15s; see %s", name, addr, logPath)
		}
	}
}

// stop asks the process (and the other nodes) to exit and kills it if it
// has not after 10s.
func (p *process) stop() error {
	var errs []error
	for _, q := range p.more {
		errs = append(errs, q.stop())
	}
	return errors.Join(append(errs, p.stopOne())...)
}

func (p *process) stopOne() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return errors.New("did not exit within 10s of SIGTERM: killed")
	}
}

// reference starts one of the bench's own servers.
func reference(name, bin string) server {
	return server{name: name, start: func(dir string) (*process, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(ports[0])
		p, err := startProcess(dir, name, bin, addr, nil, "-addr", addr)
		if p != nil {
			p.pprof = addr
		}
		return p, err
	}}
}

// centrifugoServer starts Centrifugo's bin with the bench's configuration
// on a free port; /debug/pprof/ is on the same port.
func centrifugoServer(bin string) server {
	return server{name: "centrifugo", proto: load.ProtoCentrifugo, start: func(dir string) (*process, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "config.json")
		if err := os.WriteFile(conf, centrifugo.Config(ports[0]), 0o644); err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(ports[0])
		p, err := startProcess(dir, "centrifugo", bin, addr, nil, "--config", conf)
		if p != nil {
			p.pprof = addr
		}
		return p, err
	}}
}

// product starts the product binary the way tarsnode does, with a config
// file whose adapters listen on free ports and the extra <websocket> lines. With pprof, the binary is the
// profiling build and serves /debug/pprof/ on one more port. Its cluster
// is n such processes, each in a directory of its own, whose peers key
// lists every node's PushObj.
func product(name, bin string, pprof bool, extra string) server {
	return server{
		name:    name,
		pushObj: true,
		start: func(dir string) (*process, error) {
			ports, err := freePorts(5)
			if err != nil {
				return nil, err
			}
			return startProduct(dir, bin, ports, extra, pprof)
		},
		cluster: func(dir string, n int) (*process, error) { return startCluster(dir, bin, n, extra, pprof) },
	}
}

// startCluster starts n product processes, each in a directory of its own,
// whose peers key lists every node's PushObj, with extra lines in
// <websocket>; the first is returned with the others in its more.
func startCluster(dir, bin string, n int, extra string, pprof bool) (*process, error) {
	ports, err := freePorts(5 * n)
	if err != nil {
		return nil, err
	}
	var eps []string
	for i := range n {
		eps = append(eps, fmt.Sprintf("tcp -h 127.0.0.1 -p %d -t 60000", ports[5*i+2]))
	}
	peers := "peers=TestApp.WebsocketServer.PushObj@" + strings.Join(eps, ":") + "\ncluster-secret=bench-cluster-secret\n" + extra
	var first *process
	for i := range n {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
		err := os.MkdirAll(nodeDir, 0o755)
		var p *process
		if err == nil {
			p, err = startProduct(nodeDir, bin, ports[5*i:5*i+5], peers, pprof && i == 0)
		}
		if err != nil {
			if first != nil {
				first.stop()
			}
			return nil, err
		}
		if first == nil {
			first = p
		} else {
			first.more = append(first.more, p)
		}
	}
	return first, nil
}

// startProduct runs one product process in dir on five ports (AdminObj,
// HTTP, PushObj, HelloObj, pprof) with extra lines in <websocket>.
func startProduct(dir, bin string, ports []int, websocket string, pprof bool) (*process, error) {
	conf := filepath.Join(dir, "product.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, productConf, dir, ports[0], ports[1], ports[2], ports[3], ports[3], websocket), 0o644); err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[1])
	var env []string
	if pprof {
		env = []string{pprofEnv + "=127.0.0.1:" + strconv.Itoa(ports[4])}
	}
	p, err := startProcess(dir, "product", bin, addr, env, "--config="+conf)
	if p != nil {
		p.push = "127.0.0.1:" + strconv.Itoa(ports[2])
	}
	if p != nil && pprof {
		p.pprof = strings.TrimPrefix(env[0], pprofEnv+"=")
	}
	return p, err
}

// productConf is default.conf with every port free and every path in the
// run's directory. Args: dir, AdminObj, obj (HTTP/WebSocket), PushObj,
// HelloObj, HelloObj again for the hello proxy, more <websocket> lines.
const productConf = `<tars>
  <application>
    <client>
      sync-invoke-timeout=3000
      async-invoke-timeout=5000
    </client>
    <server>
      app=TestApp
      server=WebsocketServer
      localip=127.0.0.1
      local=tcp -h 127.0.0.1 -p %[2]d -t 10000
      basepath=%[1]s/
      datapath=%[1]s/data/
      logpath=%[1]s/logs/
      logsize=50M
      lognum=10
      logLevel=INFO
      deactivating-timeout=3000
      <TestApp.WebsocketServer.objAdapter>
        allow
        endpoint=tcp -h 127.0.0.1 -p %[3]d -t 60000
        maxconns=100000
        protocol=not_tars
        queuecap=10000
        queuetimeout=60000
        servant=TestApp.WebsocketServer.obj
        threads=5
      </TestApp.WebsocketServer.objAdapter>
      <TestApp.WebsocketServer.PushObjAdapter>
        allow
        endpoint=tcp -h 127.0.0.1 -p %[4]d -t 60000
        maxconns=100000
        protocol=tars
        queuecap=10000
        queuetimeout=60000
        servant=TestApp.WebsocketServer.PushObj
        threads=5
      </TestApp.WebsocketServer.PushObjAdapter>
      <TestApp.WebsocketServer.HelloObjAdapter>
        allow
        endpoint=tcp -h 127.0.0.1 -p %[5]d -t 60000
        maxconns=100000
        protocol=tars
        queuecap=10000
        queuetimeout=60000
        servant=TestApp.WebsocketServer.HelloObj
        threads=5
      </TestApp.WebsocketServer.HelloObjAdapter>
    </server>
    <websocket>
      hello=TestApp.WebsocketServer.HelloObj@tcp -h 127.0.0.1 -p %[6]d -t 3000
      %[7]s
    </websocket>
  </application>
</tars>
`
