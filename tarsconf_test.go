package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

func mustParseConf(t *testing.T, text string) *tars.Conf {
	t.Helper()
	c, err := tars.ParseConf("test.conf", []byte(text))
	if err != nil {
		t.Fatalf("ParseConf: %v", err)
	}
	return c
}

// The framework keys of the sample are tars.LoadConfig's (tars/conf_test.go);
// its websocket section has only the cluster secret.
func TestLoadConfSample(t *testing.T) {
	c, err := tars.LoadConf("testdata/tarsconf/sample.conf")
	if err != nil {
		t.Fatal(err)
	}
	set, pull, err := loadSettings(c, DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultSettings()
	want.ClusterSecret = "sample-cluster-secret-0123"
	if !reflect.DeepEqual(set, want) || pull != nil {
		t.Errorf("loadSettings =\n%+v, %q\nwant\n%+v", set, pull, want)
	}
	if set, _, err := loadSettings(&tars.Conf{}, DefaultSettings()); err != nil || !reflect.DeepEqual(set, DefaultSettings()) {
		t.Errorf("loadSettings(empty) = %+v, %v", set, err)
	}
}

func TestDefaultConf(t *testing.T) {
	sc, err := tars.LoadConfig(DefaultConf())
	if err != nil {
		t.Fatal(err)
	}
	set, pull, err := loadSettings(DefaultConf(), DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	if sc.App != "TestApp" || sc.Server != "WebsocketServer" {
		t.Errorf("app/server = %q/%q", sc.App, sc.Server)
	}
	if sc.Local == nil || sc.Local.String() != "tcp -h 127.0.0.1 -p 20001 -t 10000" {
		t.Errorf("local = %v", sc.Local)
	}
	if sc.Node != "" || sc.Locator != "" || sc.ConfigObj != "" {
		t.Errorf("default config talks to a platform: node %q locator %q config %q", sc.Node, sc.Locator, sc.ConfigObj)
	}
	if sc.BasePath != "./" || sc.DataPath != "data/" || sc.LogPath != "logs/" || sc.LogLevel != "INFO" {
		t.Errorf("paths/level = %q %q %q %q", sc.BasePath, sc.DataPath, sc.LogPath, sc.LogLevel)
	}
	for _, w := range []struct {
		servant, protocol, endpoint string
	}{
		{"TestApp.WebsocketServer.obj", "not_tars", "tcp -h 127.0.0.1 -p 18080 -t 60000"},
		{"TestApp.WebsocketServer.PushObj", "tars", "tcp -h 127.0.0.1 -p 10015 -t 60000"},
		{"TestApp.WebsocketServer.HelloObj", "tars", "tcp -h 127.0.0.1 -p 10016 -t 60000"},
	} {
		a, ok := sc.Adapter(w.servant)
		if !ok {
			t.Errorf("no adapter for %s", w.servant)
			continue
		}
		if a.Name != w.servant+"Adapter" || a.Protocol != w.protocol || a.Endpoint.String() != w.endpoint {
			t.Errorf("adapter %+v, want %+v", a, w)
		}
	}
	want := DefaultSettings()
	want.Hello = "TestApp.WebsocketServer.HelloObj@tcp -h 127.0.0.1 -p 10016 -t 3000"
	want.CallAllow = "TestApp.WebsocketServer.HelloObj:hello" // the demo page's call
	want.Hook = "TestApp.WebsocketServer.HelloObj"            // refuses a word
	if !reflect.DeepEqual(set, want) {
		t.Errorf("Settings =\n%+v\nwant\n%+v", set, want)
	}
	if pull != nil {
		t.Errorf("config-files = %q", pull)
	}
	// Every product key is present, so the file documents them all.
	for k := range websocketKeys {
		if _, ok := DefaultConf().Lookup(websocketPath + "<" + k + ">"); !ok {
			t.Errorf("default.conf lacks websocket<%s>", k)
		}
	}
}

// loadWith loads a minimal valid config (app A, server S) with extra lines
// in the server and websocket sections, as main does: the framework keys,
// then the websocket section.
func loadWith(t *testing.T, server, websocket string) (*tars.Config, Settings, []string, error) {
	t.Helper()
	text := "<tars>\n<application>\n<server>\napp=A\nserver=S\n" + server +
		"\n</server>\n<websocket>\n" + websocket + "\n</websocket>\n</application>\n</tars>\n"
	c, err := tars.ParseConf("t.conf", []byte(text))
	if err != nil {
		t.Fatalf("ParseConf: %v", err)
	}
	cfg, err := tars.LoadConfig(c)
	if err != nil {
		return nil, Settings{}, nil, err
	}
	set, pull, err := loadSettings(c, DefaultSettings())
	return cfg, set, pull, err
}

func TestLoadSettings(t *testing.T) {
	sc, set, pull, err := loadWith(t, "logsize=1G\nlognum=3\nlogLevel=warn\nmaxPackageLength=512K\nkeepalive-interval=2500\ndeactivating-timeout=0", `
store=memory
history=0
max-message=1024
queue-messages=8
queue-bytes=2M
max-rooms=3
max-room-name=16
origins= https://a.example , ,https://b.example
max-conns-per-ip=5
command-rate=0.5
command-burst=2
ping-interval=1000
idle-timeout=3000
write-timeout=500
push-token=tok=en
room-secret=s3cret
hello=H.S.HelloObj
peers=A.S.PushObj@tcp -h 10.0.0.6 -p 10015:tcp -h 10.0.0.7 -p 10015
cluster-secret=0123456789abcdef
max-http-body=100
send-rate=8K
hosts=chat.example, localhost
http-read-timeout=2500
announce=true
relay=all
call-allow=A.S.OrderObj:get,list;B.S.Obj:*
call-concurrency=3
call-max-args=2K
hook=A.S.HookObj@tcp -h 10.0.0.8 -p 10020
hook-timeout=250
hook-fail=open
config-files=a.conf, b.json`)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		Store: "memory", History: 0, HistoryDisk: 256 << 20, MaxMessage: 1024, QueueMessages: 8, QueueBytes: 2 << 20,
		MaxRooms: 3, MaxRoomName: 16, Origins: []string{"https://a.example", "https://b.example"},
		MaxConnsPerIP: 5, CommandRate: 0.5, CommandBurst: 2,
		PingInterval: time.Second, IdleTimeout: 3 * time.Second, WriteTimeout: 500 * time.Millisecond,
		PushToken: "tok=en", RoomSecret: "s3cret", Hello: "H.S.HelloObj",
		Peers:         "A.S.PushObj@tcp -h 10.0.0.6 -p 10015:tcp -h 10.0.0.7 -p 10015",
		ClusterSecret: "0123456789abcdef",
		MaxHTTPBody:   100, SendRate: 8 << 10,
		Hosts: []string{"chat.example", "localhost"}, ReadTimeout: 2500 * time.Millisecond,
		Announce: true, Relay: "all", CallAllow: "A.S.OrderObj:get,list;B.S.Obj:*", CallConcurrency: 3, CallMaxArgs: 2 << 10,
		Hook: "A.S.HookObj@tcp -h 10.0.0.8 -p 10020", HookTimeout: 250 * time.Millisecond, HookFail: "open",
	}
	if !reflect.DeepEqual(set, want) {
		t.Errorf("Settings =\n%+v\nwant\n%+v", set, want)
	}
	if !reflect.DeepEqual(pull, []string{"a.conf", "b.json"}) {
		t.Errorf("config-files = %q", pull)
	}
	if sc.LogSize != 1<<30 || sc.LogNum != 3 || sc.LogLevel != "WARN" || sc.MaxPacket != 512<<10 ||
		sc.KeepAliveInterval != 2500*time.Millisecond || sc.DeactivatingTimeout != 0 {
		t.Errorf("server values: %+v", sc)
	}
	if sc.ModuleName != "A.S" || sc.Local != nil || sc.Adapters != nil {
		t.Errorf("defaults: module %q local %v adapters %v", sc.ModuleName, sc.Local, sc.Adapters)
	}
}

func TestLoadConfigAdapterDefaults(t *testing.T) {
	// threads, queuecap, queuetimeout, notify, log and async-invoke-timeout
	// are accepted and ignored, whatever their value.
	sc, _, _, err := loadWith(t, "<X.S.FooObjAdapter>\nendpoint=tcp -h * -p 1\nservant=X.S.FooObj\nallow=10.0.0.1, 10.0.0.2\n"+
		"threads=-1\nqueuecap=x\nqueuetimeout=x\n</X.S.FooObjAdapter>\nnotify=N@\nlog=L@\n"+
		"</server>\n<client>\nasync-invoke-timeout=x\n</client>\n<server>", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []tars.AdapterConfig{{
		Name: "X.S.FooObjAdapter", Endpoint: tars.Endpoint{Proto: "tcp", Host: "*", Port: 1, Timeout: 3 * time.Second},
		Servant: "X.S.FooObj", Protocol: "tars", Allow: []string{"10.0.0.1", "10.0.0.2"},
		MaxConns: 1024,
	}}
	if !reflect.DeepEqual(sc.Adapters, want) {
		t.Errorf("Adapters = %+v, want %+v", sc.Adapters, want)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	const ad = "/tars/application/server/X.S.FooObjAdapter"
	adapter := func(body string) string {
		return "<X.S.FooObjAdapter>\n" + body + "\n</X.S.FooObjAdapter>"
	}
	tests := []struct{ server, websocket, want string }{
		{"server=", "", "config /tars/application/server<server>: not set"},
		{"logsize=10X", "", `config /tars/application/server<logsize>: bad value "10X"`},
		{"logsize=0", "", `config /tars/application/server<logsize>: bad value "0"`},
		{"logsize=99999999999G", "", `<logsize>: bad value "99999999999G"`},
		{"lognum=ten", "", `config /tars/application/server<lognum>: bad value "ten" (want a whole number >= 1)`},
		{"logLevel=LOUD", "", `<logLevel>: bad value "LOUD" (want DEBUG, INFO, WARN, ERROR or NONE)`},
		{"deactivating-timeout=3s", "", `<deactivating-timeout>: bad value "3s" (want milliseconds >= 0)`},
		{"maxPackageLength=4G", "", `<maxPackageLength>: bad value "4G" (want a size below 2G)`},
		{"local=tcp -h x -p abc", "", `config /tars/application/server<local>: tars: endpoint "tcp -h x -p abc": bad port "abc"`},
		{"node=tars.tarsnode.ServerObj@", "", `config /tars/application/server<node>: tars: proxy`},
		{"keepalive-interval=0", "", `<keepalive-interval>: bad value "0"`},
		{adapter("servant=X.S.FooObj"), "", "config " + ad + "<endpoint>: not set"},
		{adapter("endpoint=tcp -h a -p 1"), "", "config " + ad + "<servant>: not set"},
		{adapter("endpoint=tcp -p 1\nservant=X.S.FooObj"), "", "config " + ad + `<endpoint>: tars: endpoint "tcp -p 1": no host (-h)`},
		{adapter("endpoint=tcp -h a\nservant=X.S.FooObj\nprotocol=http"), "", "config " + ad + `<protocol>: bad value "http" (want tars or not_tars)`},
		{adapter("endpoint=tcp -h a\nservant=X.S.FooObj") + "\n<Y>\nendpoint=tcp -h b\nservant=X.S.FooObj\n</Y>", "",
			`config /tars/application/server/Y<servant>: "X.S.FooObj" is also served by adapter X.S.FooObjAdapter`},
		{"", "store=redis", `config /tars/application/websocket<store>: bad value "redis" (want file or memory)`},
		{"", "relay=some", `config /tars/application/websocket<relay>: bad value "some" (want interest or all)`},
		{"", "hook-fail=maybe", `config /tars/application/websocket<hook-fail>: bad value "maybe" (want closed or open)`},
		{"", "hook-timeout=0", `config /tars/application/websocket<hook-timeout>: bad value "0" (want milliseconds >= 1)`},
		{"", "hook-timeout=80000", `hook-timeout (80000 ms) must be less than idle-timeout (75000 ms)`},
		{"", "max-mesage=10", "config /tars/application/websocket<max-mesage>: unknown key"},
		{"", "history=-1", `websocket<history>: bad value "-1"`},
		{"", "max-message=big", `websocket<max-message>: bad value "big"`},
		{"", "queue-messages=0", `websocket<queue-messages>: bad value "0"`},
		{"", "command-rate=NaN", `websocket<command-rate>: bad value "NaN"`},
		{"", "command-rate=-1", `websocket<command-rate>: bad value "-1"`},
		{"", "command-rate=+Inf", `websocket<command-rate>: bad value "+Inf"`},
		{"", "ping-interval=0", `websocket<ping-interval>: bad value "0"`},
		{"", "ping-interval=80000", `websocket<ping-interval>: bad value "80000" (want less than idle-timeout (75000 ms)`},
		{"", "idle-timeout=1.5", `websocket<idle-timeout>: bad value "1.5"`},
		{"", "hello=H.S.HelloObj@tcp -h", `config /tars/application/websocket<hello>: tars: proxy "H.S.HelloObj@tcp -h": endpoint 1: `},
		{"", "peers=A B", `config /tars/application/websocket<peers>: tars: proxy "A B": bad servant name`},
		{"", "max-http-body=-5", `websocket<max-http-body>: bad value "-5"`},
		{"", "peers=A.S.PushObj@tcp -h b -p 1", `config /tars/application/websocket<cluster-secret>: required, at least 16 characters, when peers or a locator is set`},
		{"", "peers=A.S.PushObj@tcp -h b -p 1\ncluster-secret=short-secret", `websocket<cluster-secret>: required, at least 16 characters`},
	}
	for _, tt := range tests {
		_, _, _, err := loadWith(t, tt.server, tt.websocket)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "short-secret") {
			t.Errorf("server %q websocket %q: error %v, want %q (and no secret)", tt.server, tt.websocket, err, tt.want)
		}
	}
}

func FuzzParseConf(f *testing.F) {
	sample, err := os.ReadFile("testdata/tarsconf/sample.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add(defaultConfData)
	f.Add([]byte("\xef\xbb\xbf<a>\r\nk\\=x=v\\n\r\n<b>\nbare\n</b>\n</a>\n<a>\nallow=<none>\n</a>"))
	f.Add([]byte("<a>\n</b>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := tars.ParseConf("f.conf", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.conf:") {
				t.Fatalf("error %q does not say where", err)
			}
			return
		}
		// Every reported section and key can be looked up again.
		var walk func(path string)
		walk = func(path string) {
			for _, k := range c.Keys(path) {
				v, ok := c.Lookup(path + "<" + k + ">")
				if !ok || c.Get(path+"<"+k+">") != v {
					t.Fatalf("key %q of %q reported but Lookup = %q, %v", k, path, v, ok)
				}
			}
			for _, s := range c.Sections(path) {
				walk(path + "/" + s)
			}
		}
		walk("")
		// The typed view never panics, whatever it makes of the values.
		_, _ = tars.LoadConfig(c)
		_, _, _ = loadSettings(c, DefaultSettings())
	})
}

// TestLiveApply: a pulled file's <websocket> section is put in force over
// the settings in force; restart-only keys keep their value; a bad file
// changes nothing.
func TestLiveApply(t *testing.T) {
	_, set, _, err := loadWith(t, "", "push-token=old-token\ncluster-secret=0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	l := newLive(set)
	dir := t.TempDir()
	apply := func(name, text string) (string, error) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := tars.LoadConf(path)
		if err != nil {
			t.Fatal(err)
		}
		return l.apply(name, c)
	}

	got, err := apply("ws.conf", "<websocket>\n  push-token=new-token\n  history=10\n"+
		"  peers=A.S.PushObj@tcp -h 10.0.0.9 -p 10015\n  ping-interval=1000\n  config-files=x.conf\n  tls-cert=new.pem\n</websocket>\n")
	if want := "applied: history, push-token; needs a restart: ping-interval, peers, tls-cert, config-files"; err != nil || got != want {
		t.Fatalf("apply = %q, %v; want %q", got, err, want)
	}
	want := set
	want.PushToken, want.History = "new-token", 10
	if s := *l.get(); !reflect.DeepEqual(s, want) {
		t.Errorf("settings in force =\n%+v\nwant\n%+v", s, want)
	}

	// A server's whole config works too; what it does not set stays.
	got, err = apply("App.Server.conf", "<tars>\n<application>\n<websocket>\nmax-rooms=5\norigins=https://a.example\n"+
		"</websocket>\n</application>\n</tars>\n")
	if err != nil || got != "applied: max-rooms, origins" {
		t.Fatalf("whole config: apply = %q, %v", got, err)
	}
	want.MaxRooms, want.Origins = 5, []string{"https://a.example"}
	if s := *l.get(); !reflect.DeepEqual(s, want) {
		t.Errorf("settings in force =\n%+v\nwant\n%+v", s, want)
	}
	if got, err := apply("same.conf", "<websocket>\nmax-rooms=5\n</websocket>\n"); err != nil || got != "applied: nothing" {
		t.Errorf("same value: apply = %q, %v", got, err)
	}
	if got, err := apply("other.conf", "<other>\nk=v\n</other>\n"); err != nil || got != "written, no <websocket> section" {
		t.Errorf("no section: apply = %q, %v", got, err)
	}

	// Errors name the file and the key, and change nothing.
	before := l.get()
	for _, c := range []struct{ text, want string }{
		{"history=x\npush-token=bad", `bad.conf: config /websocket<history>: bad value "x"`},
		{"max-mesage=10", "bad.conf: config /websocket<max-mesage>: unknown key"},
		{"ping-interval=80000", `bad.conf: config /websocket<ping-interval>: bad value "80000" (want less than idle-timeout (75000 ms)`},
		{"max-message=2M", "bad.conf: config /websocket: queue-bytes (1048576) is too small"},
		// Valid together, but ping-interval stays 30 s until a restart.
		{"ping-interval=1000\nidle-timeout=2000", "bad.conf: with the values kept until a restart, ping-interval (30000 ms) must be less than idle-timeout (2000 ms)"},
	} {
		got, err := apply("bad.conf", "<websocket>\n"+c.text+"\n</websocket>\n")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasSuffix(err.Error(), "; nothing changed") {
			t.Errorf("%q: apply = %q, %v; want %q", c.text, got, err, c.want)
		}
		if l.get() != before {
			t.Errorf("%q: the settings in force changed", c.text)
		}
	}

	// Without a cluster secret in force, peers in a pulled file are refused.
	l = newLive(DefaultSettings())
	if _, err := apply("peers.conf", "<websocket>\npeers=A.S.PushObj@tcp -h b -p 1\n</websocket>\n"); err == nil ||
		!strings.Contains(err.Error(), "config /websocket<cluster-secret>: required") {
		t.Errorf("peers without a secret: %v", err)
	}
}

// TestWebsocketKeys: every setting has its key, and every restart-only key
// is one of them.
func TestWebsocketKeys(t *testing.T) {
	if len(websocketKeys) != reflect.TypeFor[Settings]().NumField()+1 || websocketKeys[""] {
		t.Errorf("websocketKeys %v: want one key per Settings field (conf tag) and config-files", websocketKeys)
	}
	for k := range restartKeys {
		if !websocketKeys[k] {
			t.Errorf("restart key %q is no <websocket> key", k)
		}
	}
}
