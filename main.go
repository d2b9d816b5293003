// Command websocketserver is a WebSocket chat-room and push server for the Tars ecosystem.
// Browsers join rooms over WebSocket; pages, HTTP calls and Tars services push messages to a
// room or to everyone. On a Tars platform tarsnode starts it with --config=App.Server.config.conf;
// without --config it serves the demo from the embedded default.conf.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tarsws/websocketserver/tars"
)

// version is the build version (-ldflags "-X main.version=..."); empty: the module's and VCS's.
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // after the first signal a second one kills at once, as usual
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && err.Error() != "" { // a bad flag is reported by its parser
		fmt.Fprintln(os.Stderr, "websocketserver:", err)
	}
	if errors.As(err, new(usageError)) {
		os.Exit(2)
	} else if err != nil {
		os.Exit(1)
	}
}

// usageError means the command line was wrong: exit status 2.
type usageError string

func (e usageError) Error() string { return string(e) }

// run parses the command line and serves until ctx ends or AdminObj stops it, then drains.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// A first argument without a leading '-' names a subcommand.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
			"push": runPush, "package": runPackage}[args[0]]
		if sub != nil {
			return sub(ctx, args[1:], stdout, stderr)
		}
		return usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	flags := newFlags("websocketserver", "usage: websocketserver [-config FILE] | push ... | package ...\n\n", stderr)
	config := flags.String("config", "", "the config file tarsnode writes (default: the embedded default.conf)")
	if err := flags.Parse(args); err != nil {
		return flagError(err)
	}
	if flags.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", flags.Arg(0)))
	}
	configSet := flags.NFlag() > 0 // config is the only flag
	if configSet && *config == "" {
		return usageError("--config: empty file name")
	}
	conf, cfg, name, err := loadConf(*config)
	if err != nil {
		return err
	}
	cfg.Version = version
	var logTo io.Writer // a person running the demo watches the terminal; a platform, the log file
	if !configSet {
		logTo = stderr
	}
	set, pull, err := loadSettings(conf, DefaultSettings())
	var logs *tars.Logs
	if err == nil {
		logs, err = tars.OpenLogs(cfg, logTo)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer logs.Close()
	app, err := tars.New(cfg, logs)
	if err == nil {
		var srv *server
		if srv, err = newServer(app, set); err == nil {
			if a, ok := app.HTTPAddr(); ok {
				ap, _ := netip.ParseAddrPort(a.String())
				e := tars.Endpoint{Host: ap.Addr().String(), Port: int(ap.Port())}.Dialable("")
				fmt.Fprintf(stdout, "open %s://%s/client1.html and /client2.html\n", httpScheme(cfg), e.Addr())
			}
			return app.Run(ctx, tars.RunOptions{Pull: pull, Apply: srv.live.apply, Drain: srv.drain})
		}
	}
	logs.Logger.Error("cannot start", "config", name, "err", err)
	return fmt.Errorf("%s: %w", name, err)
}

// loadConf reads file, or the embedded default.conf when file is "", and its framework keys
// (<tars><application>); it returns them and the name errors give the file.
func loadConf(file string) (*tars.Conf, *tars.Config, string, error) {
	conf, name := DefaultConf(), cmp.Or(file, "default.conf (embedded)")
	if file != "" {
		var err error
		if conf, err = tars.LoadConf(file); err != nil {
			return nil, nil, name, err // names the file, and the line for a syntax error
		}
	}
	cfg, err := tars.LoadConfig(conf)
	if err != nil {
		err = fmt.Errorf("%s: %w", name, err)
	}
	return conf, cfg, name, err
}

// server is the WebSocket server put on a tars.App.
type server struct {
	live *live
	hub  *Hub
	cl   *Cluster // nil: no other nodes
}

// newServer puts the hub, HTTP handler, servants, admin commands and properties on app; app.Run serves.
func newServer(app *tars.App, set Settings) (*server, error) {
	cfg := app.Config()
	push := cfg.ServantName("PushObj")
	copt := ClusterOptions{Servant: push, Secret: set.ClusterSecret, Log: app.Log()}
	relay := cfg.Locator != "" || set.Peers != ""
	if cfg.Locator != "" {
		copt.Resolver = app.Client()
	} else if set.Peers != "" {
		p, _ := tars.ParseProxy(set.Peers) // loadSettings has parsed it
		if p.Name != push || len(p.Endpoints) == 0 {
			return nil, fmt.Errorf("config %s<peers>: %q: want %s@ENDPOINT[:ENDPOINT...], this server's own PushObj", websocketPath, set.Peers, push)
		}
		copt.Static = p.Endpoints
	}
	tc, err := loadTLS(set, cfg, app.Log())
	if err != nil {
		return nil, err
	}
	app.UseTLS(tc)
	s := &server{live: newLive(set)}
	opt := hubOptions{Live: s.live, DataDir: cmp.Or(cfg.DataPath, "data"), Log: app.Log(), Relay: relay,
		Gateway: &gateway{client: app.Client(), local: app.Reachable, proxies: map[string]*tars.ObjProxy{}}}
	if opt.Hello, err = helloCaller(app, set.Hello); err != nil {
		return nil, err
	}
	if s.hub, err = newHub(opt); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", opt.DataDir, err)
	}
	if relay {
		// Peers know this node by an address they can dial, not its wildcard; one listening on
		// every interface is also itself on this machine's loopback.
		if e, ok := app.Reachable(push); ok {
			copt.Self = []string{e.Addr()}
			if ac, _ := cfg.Adapter(push); ac.Endpoint.Dialable("") != ac.Endpoint {
				copt.Self = append(copt.Self, fmt.Sprintf("127.0.0.1:%d", e.Port), fmt.Sprintf("[::1]:%d", e.Port))
			}
		} else {
			app.Log().Warn("cluster: no adapter serves PushObj, so the other nodes cannot pass their messages here", "servant", push)
		}
		s.cl = NewCluster(s.hub, app.Client(), copt)
		s.hub.useCluster(s.cl.interestChanged, s.cl.presence)
		s.cl.Start()
	}
	registerPush(app, push, s.hub, s.live, s.cl)
	registerHello(app, cfg.ServantName("HelloObj"), cfg.App+"."+cfg.Server)
	registerCommands(app, s.hub)
	registerProperties(app, s.hub)
	app.ServeHTTP(newHandler(s.hub, s.live, s.cl, newMetrics(s.hub, app, s.cl), app.Log()), set.ReadTimeout)
	return s, nil
}

// drain closes every WebSocket (1001) once flushed, then the cluster with what they pushed meanwhile.
func (s *server) drain(ctx context.Context) error {
	err := s.hub.Shutdown(ctx)
	if s.cl != nil {
		if cerr := s.cl.Close(ctx); cerr != nil {
			s.hub.log.Warn("cluster", "err", cerr)
		}
	}
	return err
}
