// Command websocketserver is a WebSocket chat-room and push server for the
// Tars ecosystem. Browsers join rooms over WebSocket; pages, HTTP calls and
// Tars services push messages to a room or to everyone.
//
// On a Tars platform tarsnode starts it as
//
//	WebsocketServer --config=/path/App.Server.config.conf
//
// Without --config it serves the demo from the embedded default.conf.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal a second one kills at once, as usual.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var u usageError
	switch {
	case err == nil:
	case errors.As(err, &u):
		if u.msg != "" {
			fmt.Fprintln(os.Stderr, "websocketserver:", u.msg)
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

// run parses the command line and serves until ctx ends or AdminObj asks
// for a shutdown, then drains gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// A first argument without a leading '-' names a subcommand.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "push":
			return runPush(ctx, args[1:], stdout, stderr)
		case "package":
			return runPackage(ctx, args[1:], stdout, stderr)
		}
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	flags := flag.NewFlagSet("websocketserver", flag.ContinueOnError)
	flags.SetOutput(stderr)
	config := flags.String("config", "", "the config file tarsnode writes (default: the embedded default.conf)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{}
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", flags.Arg(0))}
	}
	configSet := false
	flags.Visit(func(f *flag.Flag) { configSet = configSet || f.Name == "config" })
	if configSet && *config == "" {
		return usageError{"--config: empty file name"}
	}

	conf, name := DefaultConf(), "default.conf (embedded)"
	if configSet {
		var err error
		if conf, err = tars.LoadConf(*config); err != nil {
			return err // names the file, and the line for a syntax error
		}
		name = *config
	}
	sc, err := LoadServerConfig(conf)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// A person running the demo by hand watches the terminal; on a
	// platform the log goes to its file.
	var logTo io.Writer
	if !configSet {
		logTo = stderr
	}
	logs, err := openLogs(sc, logTo)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer logs.Close()

	app, err := newApp(sc, logs)
	if err != nil {
		logs.Logger.Error("cannot start", "config", name, "err", err)
		return fmt.Errorf("%s: %w", name, err)
	}
	return app.serve(ctx, stdout)
}

// App is the running server: what main wires together, and what the
// framework services (framework.go) and AdminObj report on.
type App struct {
	Conf     *ServerConfig
	Logs     *Logs
	Log      *slog.Logger
	Live     *live        // the settings in force
	Metrics  *Metrics     // served at /metrics
	Hub      *Hub         // rooms and connections
	Tars     *tars.Server // every Tars adapter, AdminObj included
	Client   *tars.Client // calls other servants (hello|NAME, framework)
	Adapters []*Adapter   // config order, then AdminAdapter
	Admin    *Admin
	Cluster  *Cluster // the other nodes of this server; nil: none configured

	started  time.Time
	stopOnce sync.Once
	stopping chan struct{}
}

// Stop asks the server to drain and exit; it returns at once.
func (a *App) Stop() {
	a.stopOnce.Do(func() { close(a.stopping) })
}

// newApp binds every adapter and builds the server; nothing is served yet.
func newApp(sc *ServerConfig, logs *Logs) (app *App, err error) {
	log := logs.Logger
	a := &App{Conf: sc, Logs: logs, Log: log, started: time.Now(), stopping: make(chan struct{})}
	defer func() {
		if err != nil {
			for _, ad := range a.Adapters {
				ad.ln.Close()
			}
		}
	}()

	cfgs := sc.Adapters
	if sc.Local != nil {
		cfgs = append(cfgs[:len(cfgs):len(cfgs)], AdapterConfig{
			Name: AdminAdapter, Endpoint: *sc.Local, Servant: AdminServant, Protocol: "tars",
		})
	} else {
		log.Warn("no local endpoint in the config: AdminObj is not served, tarsnode cannot stop this server gracefully")
	}
	for _, cfg := range cfgs {
		ad, err := listenAdapter(cfg, log)
		if err != nil {
			return nil, err
		}
		a.Adapters = append(a.Adapters, ad)
	}

	dataDir := sc.DataPath
	if dataDir == "" {
		dataDir = "data"
	}
	a.Live = newLive(sc.Settings)
	a.Metrics = &Metrics{}
	a.Tars = &tars.Server{MaxPacket: sc.MaxPacket, Logger: log}
	a.Client = tars.NewClient(tars.ClientOptions{
		SyncTimeout: sc.Client.SyncInvokeTimeout,
		MaxPacket:   sc.MaxPacket,
		Resolver:    frameworkResolver(sc),
		Refresh:     sc.Client.RefreshEndpointInterval,
		OnCall:      a.Metrics.CountMade(frameworkOnCall(sc)),
		Logger:      log,
	})
	a.Admin = newAdmin(a)

	pushName, helloName := servantName(sc, "PushObj"), servantName(sc, "HelloObj")
	hello := sc.Settings.Hello
	for _, ad := range a.Adapters {
		switch {
		case ad.Conf.Protocol == "not_tars":
		case ad.Conf.Servant == helloName:
			if hello == "" {
				hello = helloName + "@tcp -h " + loopbackHost(ad.Addr()) + " -p " + portOf(ad.Addr())
			}
		case ad.Conf.Servant != pushName && ad.Conf.Servant != AdminServant:
			log.Warn("adapter serves a servant this server does not implement; its calls will fail",
				"adapter", ad.Conf.Name, "servant", ad.Conf.Servant, "known", []string{pushName, helloName})
		}
	}
	opt := hubOptions{Live: a.Live, DataDir: dataDir, Log: log,
		Relay: frameworkResolver(sc) != nil || sc.Settings.Peers != ""}
	if hello != "" {
		if opt.Hello, err = helloCaller(a.Client, hello); err != nil {
			a.Client.Close()
			return nil, fmt.Errorf("config %s<hello>: %w", websocketPath, err)
		}
	}
	if a.Hub, err = newHub(opt); err != nil {
		a.Client.Close()
		return nil, fmt.Errorf("data directory %s: %w", dataDir, err)
	}
	a.Metrics.hub = a.Hub
	if a.Cluster, err = newCluster(sc, a.Adapters, a.Hub, a.Client, log); err != nil {
		a.Client.Close()
		a.Hub.Shutdown(context.Background())
		return nil, err
	}
	registerPush(a.Tars, pushName, a.Hub, a.Live, a.Cluster)
	registerHello(a.Tars, helloName, sc.App+"."+sc.Server)
	a.Admin.register(a.Tars)
	h := newHandler(a.Hub, a.Live, a.Cluster, a.Metrics, log)
	for _, ad := range a.Adapters {
		if ad.Conf.Protocol == "not_tars" {
			ad.setHTTP(h, sc.Settings.ReadTimeout, log)
		}
	}
	a.Metrics.Instrument(a)
	return a, nil
}

// loopbackHost returns the host to dial addr on this machine.
func loopbackHost(addr net.Addr) string {
	host, _, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return host
}

func portOf(addr net.Addr) string {
	_, port, _ := net.SplitHostPort(addr.String())
	return port
}

// serve serves every adapter until ctx ends, Stop is called or a listener
// fails, then drains.
func (a *App) serve(ctx context.Context, stdout io.Writer) error {
	fwCtx, fwCancel := context.WithCancel(context.Background())
	defer fwCancel()
	stopFramework := startFramework(fwCtx, a)
	if a.Cluster != nil {
		a.Cluster.Start()
	}

	served := make(chan error, len(a.Adapters))
	for _, ad := range a.Adapters {
		go func() {
			err := ad.serve(a.Tars)
			if err != nil {
				err = fmt.Errorf("adapter %s: %w", ad.Conf.Name, err)
			}
			served <- err
		}()
		a.Log.Info("listening", "adapter", ad.Conf.Name, "addr", ad.Addr().String(), "servant", ad.Conf.Servant, "protocol", ad.Conf.Protocol)
	}
	for _, ad := range a.Adapters {
		if ad.Conf.Protocol == "not_tars" {
			fmt.Fprintf(stdout, "open http://%s:%s/client1.html and /client2.html\n", loopbackHost(ad.Addr()), portOf(ad.Addr()))
			break
		}
	}

	var failed error
	pending := len(a.Adapters)
	select {
	case <-ctx.Done():
		a.Log.Info("shutting down on a signal")
	case <-a.stopping:
	case failed = <-served:
		pending--
		a.Log.Error("shutting down: a listener failed", "err", failed)
	}
	fwCancel()
	err := a.drain()
	stopFramework()
	a.Client.Close()
	for ; pending > 0; pending-- {
		if e := <-served; e != nil {
			a.Log.Error("listener", "err", e)
		}
	}
	a.Log.Info("stopped")
	return errors.Join(failed, err)
}

// drain stops accepting on every listener, lets HTTP requests and Tars calls
// in flight finish (their pushes are queued), then lets every WebSocket
// flush its queue and closes it with 1001, all within the
// deactivating-timeout. Running out of time is logged, not an error:
// tarsnode would kill the server anyway.
func (a *App) drain() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.Conf.DeactivatingTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, ad := range a.Adapters {
		wg.Go(func() {
			if err := ad.shutdownHTTP(ctx); err != nil {
				a.Log.Warn("HTTP requests still running at shutdown", "adapter", ad.Conf.Name, "err", err)
			}
		})
	}
	wg.Go(func() {
		if err := a.Tars.Shutdown(ctx); err != nil {
			a.Log.Warn("Tars calls still running at shutdown", "err", err)
		}
	})
	wg.Wait()
	for _, ad := range a.Adapters {
		ad.ln.Close() // in case a Serve had not started before its Shutdown
	}
	err := a.Hub.Shutdown(ctx)
	if a.Cluster != nil {
		// Last, so that what the connections pushed while closing still
		// goes out.
		if cerr := a.Cluster.Close(ctx); cerr != nil {
			a.Log.Warn("cluster", "err", cerr)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		a.Log.Warn("WebSocket queues not flushed within deactivating-timeout", "timeout", a.Conf.DeactivatingTimeout)
		return nil
	}
	if err != nil {
		a.Log.Error("shutdown", "err", err)
	}
	return err
}
