// Command tarsgopeers hosts TarsGo v1.4.5 servants that the product talks to
// in tests: a Hello servant, and stand-ins for tarsnode, the registry, the
// config server, stat, property, notify and log. Every call a recorder
// receives is printed on stdout as one JSON line, e.g.
//
//	{"peer":"node","fn":"keepAlive","adapter":"App.Server.PushObjAdapter","pid":42,"t":1700000000000}
//
// ("t" is the arrival time in Unix milliseconds). Once every adapter answers
// tars_ping it prints {"peer":"ready","adapters":{"servant":"host:port",...}}.
//
// It reads a TarsGo server config (--config=FILE). Each adapter under
// /tars/application/server is served by the servant its servant= names; the
// known names are the constants below. Extra settings live in /tars/peers:
//
//	<peers>
//	  configdir=/dir/served/by/ConfigObj
//	  <registry>
//	    App.Server.Obj=tcp -h 127.0.0.1 -p 10015 -t 60000:tcp -h 127.0.0.1 -p 10016
//	  </registry>
//	</peers>
//
// Listeners may be inherited the TarsGo way (LISTEN_FD_INHERIT_tcp_HOST:PORT=FD)
// so a test can bind port 0 itself and hand the sockets over.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/TarsCloud/TarsGo/tars"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/configf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/logf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/nodef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/notifyf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/propertyf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/queryf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/statf"
	"github.com/TarsCloud/TarsGo/tars/util/endpoint"

	"github.com/tarsws/websocketserver/interop/testapp"
)

// Servant names this program can host.
const (
	HelloObj    = "TestApp.HelloGo.HelloObj"
	OrderObj    = "TestApp.OrderGo.OrderObj"
	HookObj     = "TestApp.HookGo.HookObj"
	NodeObj     = "tars.tarsnode.ServerObj"
	QueryObj    = "tars.tarsregistry.QueryObj"
	ConfigObj   = "tars.tarsconfig.ConfigObj"
	StatObj     = "tars.tarsstat.StatObj"
	PropertyObj = "tars.tarsproperty.PropertyObj"
	NotifyObj   = "tars.tarsnotify.NotifyObj"
	LogObj      = "tars.tarslog.LogObj"
)

// dispatcher is what tars2go generates for an interface.
type dispatcher interface {
	Dispatch(ctx context.Context, val any, req *requestf.RequestPacket, rsp *requestf.ResponsePacket, withContext bool) error
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tarsgopeers:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := tars.GetConf()
	if cfg == nil {
		return fmt.Errorf("no usable TarsGo config: pass --config=FILE")
	}
	table, err := parseRegistry(cfg.GetMap("/tars/peers/registry"))
	if err != nil {
		return err
	}
	servants := map[string]struct {
		d   dispatcher
		imp any
	}{
		HelloObj:    {new(testapp.Hello), helloImp{}},
		OrderObj:    {new(testapp.OrderDispatcher), orderImp{}},
		HookObj:     {new(testapp.Hook), hookImp{}},
		NodeObj:     {new(nodef.ServerF), &nodeImp{}},
		QueryObj:    {new(queryf.QueryF), registryImp{table}},
		ConfigObj:   {new(configf.Config), configImp{dir: cfg.GetString("/tars/peers<configdir>")}},
		StatObj:     {new(statf.StatF), statImp{}},
		PropertyObj: {new(propertyf.PropertyF), propertyImp{}},
		NotifyObj:   {new(notifyf.Notify), notifyImp{}},
		LogObj:      {new(logf.Log), logImp{}},
	}

	adapters := cfg.GetDomain("/tars/application/server")
	sort.Strings(adapters)
	if len(adapters) == 0 {
		return fmt.Errorf("config has no adapter under /tars/application/server")
	}
	addrs := map[string]endpoint.Endpoint{}
	for _, a := range adapters {
		path := "/tars/application/server/" + a
		obj := cfg.GetString(path + "<servant>")
		s, ok := servants[obj]
		if !ok {
			return fmt.Errorf("adapter %s: unknown servant %q", a, obj)
		}
		ep := endpoint.Parse(cfg.GetString(path + "<endpoint>"))
		if ep.Port == 0 {
			return fmt.Errorf("adapter %s: endpoint %q has no port", a, cfg.GetString(path+"<endpoint>"))
		}
		addrs[obj] = ep
		tars.AddServantWithContext(s.d, s.imp, obj)
	}
	go announceReady(addrs)
	tars.Run()
	return nil
}
