package interop

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/TarsCloud/TarsGo/tars"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/configf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/endpointf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/nodef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/queryf"

	"github.com/tarsws/websocketserver/interop/testapp"
)

// TestPeers exercises the peers program with TarsGo's own clients.
func TestPeers(t *testing.T) {
	cfgDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(cfgDir, "WebsocketServer.conf"), []byte("<tars>\n</tars>\n"), 0o644))
	p := startPeers(t, PeersOptions{
		ConfigDir: cfgDir,
		Registry:  map[string]string{"TestApp.WebsocketServer.PushObj": "tcp -h 127.0.0.1 -p 10015 -t 60000:tcp -h 127.0.0.2 -p 10016 -t 3000"},
	}, allPeers...)
	comm := tars.NewCommunicator()

	t.Run("hello", func(t *testing.T) {
		for _, v := range []int16{basef.TARSVERSION, basef.TUPVERSION} {
			h := new(testapp.Hello)
			tars.NewCommunicator().StringToProxy(p.Proxy(peerHello), h)
			h.TarsSetVersion(v)
			got, err := h.Hello(7, "ann")
			if err != nil || got != "hello ann from TarsGo #7" {
				t.Errorf("version %d: hello(7, ann) = %q, %v", v, got, err)
			}
		}
	})

	t.Run("node", func(t *testing.T) {
		node := new(nodef.ServerF)
		comm.StringToProxy(p.Proxy(peerNode), node)
		si := nodef.ServerInfo{Application: "TestApp", ServerName: "WebsocketServer", Pid: 1234, Adapter: "TestApp.WebsocketServer.PushObjAdapter"}
		ret, err := node.KeepAlive(&si)
		if err != nil || ret != 0 {
			t.Fatalf("keepAlive = %d, %v", ret, err)
		}
		e, _ := p.waitFn(t, 0, "node", "keepAlive", nil)
		if e.str("adapter") != si.Adapter || e.num("pid") != 1234 || e.str("app") != "TestApp" || e.num("t") == 0 {
			t.Errorf("keepAlive event %v", e)
		}
		if _, err := node.ReportVersion("TestApp", "WebsocketServer", "1.0.0"); err != nil {
			t.Fatal(err)
		}
		p.waitFn(t, 0, "node", "reportVersion", func(e event) bool { return e.str("version") == "1.0.0" })
	})

	t.Run("registry", func(t *testing.T) {
		q := new(queryf.QueryF)
		comm.StringToProxy(p.Proxy(peerQuery), q)
		eps, err := q.FindObjectById("TestApp.WebsocketServer.PushObj")
		if err != nil || len(eps) != 2 || eps[0].Host != "127.0.0.1" || eps[0].Port != 10015 || eps[1].Port != 10016 || eps[0].Istcp != 1 {
			t.Errorf("findObjectById = %+v, %v", eps, err)
		}
		var active, inactive []endpointf.EndpointF
		ret, err := q.FindObjectById4Any("No.Such.Obj", &active, &inactive)
		if err != nil || ret == 0 || len(active) != 0 {
			t.Errorf("findObjectById4Any(unknown) = %d %+v, %v", ret, active, err)
		}
		p.waitFn(t, 0, "registry", "findObjectById4Any", func(e event) bool { return e.str("id") == "No.Such.Obj" })
	})

	t.Run("config", func(t *testing.T) {
		c := new(configf.Config)
		comm.StringToProxy(p.Proxy(peerConfig), c)
		var text string
		ret, err := c.LoadConfig("TestApp", "WebsocketServer", "WebsocketServer.conf", &text)
		if err != nil || ret != 0 || text != "<tars>\n</tars>\n" {
			t.Errorf("loadConfig = %d %q, %v", ret, text, err)
		}
		for _, name := range []string{"missing.conf", "../WebsocketServer.conf"} {
			ret, err = c.LoadConfigByInfo(&configf.ConfigInfo{Appname: "TestApp", Servername: "WebsocketServer", Filename: name}, &text)
			if err != nil || ret == 0 {
				t.Errorf("loadConfigByInfo(%s) = %d, %v; want a non-zero return", name, ret, err)
			}
		}
		p.waitFn(t, 0, "config", "loadConfigByInfo", func(e event) bool { return e.str("filename") == "missing.conf" })
	})
}
