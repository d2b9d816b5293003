package tars

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParseConf(t *testing.T, text string) *Conf {
	t.Helper()
	c, err := ParseConf("test.conf", []byte(text))
	if err != nil {
		t.Fatalf("ParseConf: %v", err)
	}
	return c
}

// confTree lists c as "path<key>=value" and "path" for each section, in
// file order, through Keys, Sections and Get.
func confTree(c *Conf) []string {
	var out []string
	var walk func(path string)
	walk = func(path string) {
		for _, k := range c.Keys(path) {
			out = append(out, path+"<"+k+">="+c.Get(path+"<"+k+">"))
		}
		for _, s := range c.Sections(path) {
			out = append(out, path+"/"+s)
			walk(path + "/" + s)
		}
	}
	walk("")
	return out
}

func TestLoadConfSample(t *testing.T) {
	c, err := LoadConf("testdata/tarsconf/sample.conf")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/tars/application<enableset>":                                          "n",
		"/tars/application<setdivision>":                                        "NULL",
		"/tars/application/client<locator>":                                     "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890",
		"/tars/application/server<app>":                                         "TestApp",
		"/tars/application/server<local>":                                       "tcp -h 127.0.0.1 -p 20001 -t 10000",
		"/tars/application/server<logLevel>":                                    "DEBUG",
		"/tars/application/server/TestApp.WebsocketServer.objAdapter<protocol>": "not_tars",
		"/tars/application/server/TestApp.WebsocketServer.objAdapter<allow>":    "",
	} {
		got, ok := c.Lookup(path)
		if !ok || got != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
	if got, want := c.Sections("/tars/application"), []string{"client", "server", "websocket"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sections = %q, want %q", got, want)
	}
	if got, want := c.Sections("/tars/application/server"), []string{
		"TestApp.WebsocketServer.objAdapter", "TestApp.WebsocketServer.PushObjAdapter"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sections = %q, want %q", got, want)
	}
	if got, want := c.Keys("/tars/application"), []string{"enableset", "setdivision"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Keys = %q, want %q", got, want)
	}
	wantKeys := []string{"allow", "endpoint", "handlegroup", "maxconns", "protocol", "queuecap", "queuetimeout", "servant", "threads"}
	if got := c.Keys("/tars/application/server/TestApp.WebsocketServer.PushObjAdapter"); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("Keys = %q, want %q", got, wantKeys)
	}

	cfg, err := LoadConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	want := &Config{
		App: "TestApp", Server: "WebsocketServer", LocalIP: "10.0.0.5",
		Local:                   &Endpoint{Proto: "tcp", Host: "127.0.0.1", Port: 20001, Timeout: 10000 * ms},
		Node:                    "tars.tarsnode.ServerObj@tcp -h 10.0.0.5 -p 19386 -t 60000",
		ConfigObj:               "tars.tarsconfig.ConfigObj",
		Locator:                 "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890",
		Stat:                    "tars.tarsstat.StatObj",
		Property:                "tars.tarsproperty.PropertyObj",
		BasePath:                "/usr/local/app/tars/tarsnode/data/TestApp.WebsocketServer/bin/",
		DataPath:                "/usr/local/app/tars/tarsnode/data/TestApp.WebsocketServer/data/",
		LogPath:                 "/usr/local/app/tars/app_log/",
		LogSize:                 10 * 1024 * 1024,
		LogNum:                  10,
		LogLevel:                "DEBUG",
		DeactivatingTimeout:     3 * time.Second,
		MaxPacket:               10 * 1024 * 1024,
		SyncInvokeTimeout:       3 * time.Second,
		RefreshEndpointInterval: time.Minute,
		ReportInterval:          time.Minute,
		KeepAliveInterval:       10 * time.Second,
		ModuleName:              "TestApp.WebsocketServer",
		Adapters: []AdapterConfig{{
			Name:     "TestApp.WebsocketServer.objAdapter",
			Endpoint: Endpoint{Proto: "tcp", Host: "10.0.0.5", Port: 18080, Timeout: 60000 * ms},
			Servant:  "TestApp.WebsocketServer.obj", Protocol: "not_tars", MaxConns: 200000,
		}, {
			Name:     "TestApp.WebsocketServer.PushObjAdapter",
			Endpoint: Endpoint{Proto: "tcp", Host: "10.0.0.5", Port: 10015, Timeout: 60000 * ms},
			Servant:  "TestApp.WebsocketServer.PushObj", Protocol: "tars", MaxConns: 200000,
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", cfg, want)
	}
	if a, ok := cfg.Adapter("TestApp.WebsocketServer.PushObj"); !ok || a.Endpoint.Port != 10015 {
		t.Errorf("Adapter(PushObj) = %+v, %v", a, ok)
	}
	if a, ok := cfg.Adapter(cfg.ServantName("HelloObj")); ok {
		t.Errorf("Adapter(HelloObj) = %+v, want none", a)
	}
	if got := cfg.ServantName("PushObj"); got != "TestApp.WebsocketServer.PushObj" {
		t.Errorf("ServantName(PushObj) = %q", got)
	}
}

func TestParseConfSyntax(t *testing.T) {
	c := mustParseConf(t, `
# comment
<a>
	k = v with spaces  
	url=http://x/?a=1&b=2
	hash=a#b # not a comment
	allow=<none>
	bare
	   # indented comment
	esc=tab\there\nnew\rcr\\back\=eq
	win=C:\data\logs
	a\=b=c
	x\\=y
	trail=ends\
	dup=1
	other=
	dup=2
	<b>
		deep=1
	</b>
	<c>
	</c>
</a>
<a>
	again=yes
	<b>
		deep=2
	</b>
</a>
top=level
`)
	for path, want := range map[string]string{
		"/a<k>":        "v with spaces",
		"/a<hash>":     "a#b # not a comment",
		"/a<url>":      "http://x/?a=1&b=2",
		"/a<allow>":    "<none>",
		"/a<bare>":     "",
		"/a<esc>":      "tab\there\nnew\rcr\\back=eq",
		"/a<win>":      `C:\data\logs`,
		"/a<a=b>":      "c",
		`/a<x\>`:       "y",
		"/a<trail>":    `ends\`,
		"/a<dup>":      "2",
		"/a<other>":    "",
		"/a<again>":    "yes",
		"/a/b<deep>":   "2",
		"a/b<deep>":    "2",
		"//a//b<deep>": "2",
		"/<top>":       "level",
		"<top>":        "level",
	} {
		got, ok := c.Lookup(path)
		if !ok || got != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
	for _, path := range []string{"/a<nope>", "/a/b/c<deep>", "/a", "/a<#>", "/a<>", "/z<k>", "/a<K>", "/A<k>"} {
		if got, ok := c.Lookup(path); ok {
			t.Errorf("Lookup(%q) = %q, true; want absent", path, got)
		}
		if got := c.Get(path); got != "" {
			t.Errorf("Get(%q) = %q, want empty", path, got)
		}
	}
	wantKeys := []string{"k", "url", "hash", "allow", "bare", "esc", "win", "a=b", `x\`, "trail", "dup", "other", "again"}
	if got := c.Keys("/a"); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("Keys(/a) = %q, want %q", got, wantKeys)
	}
	if got, want := c.Sections("/a"), []string{"b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sections(/a) = %q, want %q", got, want)
	}
	if got, want := c.Sections("/"), []string{"a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sections(/) = %q, want %q", got, want)
	}
	if got := c.Keys("/a/c"); len(got) != 0 {
		t.Errorf("Keys(/a/c) = %q, want none", got)
	}
	if got := c.Keys("/nope"); got != nil {
		t.Errorf("Keys(/nope) = %q, want nil", got)
	}
	if got := c.Sections("/a<k>"); got != nil {
		t.Errorf("Sections of a key path = %q, want nil", got)
	}
}

func TestParseConfBOMAndCRLF(t *testing.T) {
	c, err := LoadConf("testdata/tarsconf/bom-crlf.conf")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Get("/tars/application/server<server>"); got != "WebsocketServer" {
		t.Errorf("server = %q, want no trailing CR", got)
	}
	if got := c.Get("/tars/application/server<allow>"); got != "<none>" {
		t.Errorf("allow = %q", got)
	}
	if got := c.Sections("/"); !reflect.DeepEqual(got, []string{"tars"}) {
		t.Errorf("root sections = %q, want the BOM skipped", got)
	}
	// Concatenated files carry a BOM at the start of a later line.
	c = mustParseConf(t, "\ufeff<a>\n\ufeff\ufeffk=v\ufeff\n</a>\n")
	if got, ok := c.Lookup("/a<k>"); !ok || got != "v" {
		t.Errorf("Lookup(/a<k>) = %q, %v; want BOMs trimmed", got, ok)
	}
}

func TestZeroConf(t *testing.T) {
	for _, c := range []*Conf{nil, {}} {
		if v, ok := c.Lookup("/a<b>"); ok || v != "" {
			t.Errorf("Lookup on empty config = %q, %v", v, ok)
		}
		if len(c.Sections("/")) != 0 || len(c.Keys("/")) != 0 || confTree(c) != nil {
			t.Errorf("empty config has sections or keys")
		}
	}
	if _, err := LoadConfig(&Conf{}); err == nil || err.Error() != "config /tars/application/server<app>: not set" {
		t.Errorf("LoadConfig(empty) error = %v", err)
	}
}

func TestParseConfErrors(t *testing.T) {
	files := []struct {
		file, want string
	}{
		{"bad-mismatch.conf", "bad-mismatch.conf:5: </application> does not match <server> opened at line 3"},
		{"bad-unclosed.conf", "bad-unclosed.conf:8: </tars> does not match <server> opened at line 6"},
		{"bad-unclosed-eof.conf", "bad-unclosed-eof.conf:1: <tars> is never closed"},
		{"bad-stray.conf", "bad-stray.conf:4: </tars> closes no open section"},
		{"bad-tag.conf", `bad-tag.conf:2: section tag "<application" does not end with '>'`},
		{"bad-empty-key.conf", `bad-empty-key.conf:4: empty key in "=TestApp"`},
		{"bad-name.conf", `bad-name.conf:2: section name "my server" may not contain ' ' in "<my server>"`},
	}
	for _, f := range files {
		path := filepath.Join("testdata", "tarsconf", f.file)
		_, err := LoadConf(path)
		if err == nil {
			t.Errorf("%s: no error, want %q", f.file, f.want)
			continue
		}
		if want := filepath.Join("testdata", "tarsconf", f.want); err.Error() != want {
			t.Errorf("%s: error %q, want %q", f.file, err, want)
		}
	}
	inline := []struct{ text, want string }{
		{"<>", "x.conf:1: empty section name"},
		{"<a>\n</>", "x.conf:2: empty section name"},
		{"<", `x.conf:1: section tag "<" does not end with '>'`},
		{"<a/b>\n</a/b>", `x.conf:1: section name "a/b" may not contain '/'`},
		{"<a\\b>", `may not contain '\\'`},
		{"<a<b>>", `may not contain '<'`},
		{"\n\n\n  =", "x.conf:4: empty key"},
		{"<a>\n<b>\n</a>\n</b>", "x.conf:3: </a> does not match <b> opened at line 2"},
		{"<a>\r\n<b>\r\n</b>\r\n", "x.conf:1: <a> is never closed"},
		{"</a>", "x.conf:1: </a> closes no open section"},
	}
	for _, tt := range inline {
		_, err := ParseConf("x.conf", []byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConf(%q) error %v, want %q", tt.text, err, tt.want)
		}
	}
	if _, err := LoadConf("testdata/tarsconf/missing.conf"); !os.IsNotExist(err) {
		t.Errorf("LoadConf(missing) error %v, want not-exist", err)
	}
}

// Sections opened twice merge, escapes unescape and keys keep the order
// of their first appearance.
func TestConfTree(t *testing.T) {
	c := mustParseConf(t, "<a>\nk=v=w\nesc=\\t\\n\\\\\\=\n<b>\nx\n</b>\n</a>\n<a>\nk2=2\n</a>\ntop=1\n")
	want := []string{"<top>=1", "/a", "/a<k>=v=w", "/a<esc>=\t\n\\=", "/a<k2>=2", "/a/b", "/a/b<x>="}
	if got := confTree(c); !reflect.DeepEqual(got, want) {
		t.Errorf("tree = %q, want %q", got, want)
	}
}

func TestLoadConfigValues(t *testing.T) {
	c := mustParseConf(t, "<tars>\n<application>\n<server>\napp=A\nserver=S\nlogsize=1G\nlognum=3\nlogLevel=warn\n"+
		"maxPackageLength=512K\nkeepalive-interval=2500\ndeactivating-timeout=0\n"+
		"<X.S.FooObjAdapter>\nendpoint=tcp -h * -p 1\nservant=X.S.FooObj\nallow=10.0.0.1, ,10.0.0.2\n</X.S.FooObjAdapter>\n"+
		"</server>\n</application>\n</tars>\n")
	cfg, err := LoadConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogSize != 1<<30 || cfg.LogNum != 3 || cfg.LogLevel != "WARN" || cfg.MaxPacket != 512<<10 ||
		cfg.KeepAliveInterval != 2500*time.Millisecond || cfg.DeactivatingTimeout != 0 {
		t.Errorf("server values: %+v", cfg)
	}
	if cfg.ModuleName != "A.S" || cfg.Local != nil || cfg.LogPath != "" || cfg.Locator != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	want := []AdapterConfig{{
		Name: "X.S.FooObjAdapter", Endpoint: Endpoint{Proto: "tcp", Host: "*", Port: 1, Timeout: 3 * time.Second},
		Servant: "X.S.FooObj", Protocol: "tars", Allow: []string{"10.0.0.1", "10.0.0.2"}, MaxConns: 1024,
	}}
	if !reflect.DeepEqual(cfg.Adapters, want) {
		t.Errorf("Adapters = %+v, want %+v", cfg.Adapters, want)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	const ad = "/tars/application/server/X.S.FooObjAdapter"
	adapter := func(body string) string {
		return "<X.S.FooObjAdapter>\n" + body + "\n</X.S.FooObjAdapter>"
	}
	dup := adapter("endpoint=tcp -h a\nservant=X.S.FooObj") + "\n<Y>\nendpoint=tcp -h b\nservant=X.S.FooObj\n</Y>"
	for server, want := range map[string]string{
		"server=":                       "config /tars/application/server<server>: not set",
		"logsize=10X":                   `config /tars/application/server<logsize>: bad value "10X" (want a positive size such as 65536, 512K, 10M or 1G)`,
		"logsize=0":                     `config /tars/application/server<logsize>: bad value "0"`,
		"logsize=99999999999G":          `<logsize>: bad value "99999999999G"`,
		"lognum=ten":                    `config /tars/application/server<lognum>: bad value "ten" (want a whole number >= 1)`,
		"logLevel=LOUD":                 `<logLevel>: bad value "LOUD" (want DEBUG, INFO, WARN, ERROR or NONE)`,
		"deactivating-timeout=3s":       `<deactivating-timeout>: bad value "3s" (want milliseconds >= 0)`,
		"maxPackageLength=4G":           `<maxPackageLength>: bad value "4G" (want a size below 2G)`,
		"local=tcp -h x -p abc":         `config /tars/application/server<local>: tars: endpoint "tcp -h x -p abc": bad port "abc"`,
		"node=tars.tarsnode.ServerObj@": `config /tars/application/server<node>: tars: proxy`,
		"keepalive-interval=0":          `<keepalive-interval>: bad value "0"`,
		"</server>\n<client>\nstat=A B\n</client>\n<server>":            `config /tars/application/client<stat>: tars: proxy "A B"`,
		adapter("servant=X.S.FooObj"):                                   "config " + ad + "<endpoint>: not set",
		adapter("endpoint=tcp -h a -p 1"):                               "config " + ad + "<servant>: not set",
		adapter("endpoint=tcp -p 1\nservant=X.S.FooObj"):                "config " + ad + `<endpoint>: tars: endpoint "tcp -p 1": no host (-h)`,
		adapter("endpoint=tcp -h a\nservant=X.S.FooObj\nprotocol=http"): "config " + ad + `<protocol>: bad value "http" (want tars or not_tars)`,
		adapter("endpoint=tcp -h a\nservant=X.S.FooObj\nmaxconns=0"):    "config " + ad + `<maxconns>: bad value "0" (want a whole number >= 1)`,
		dup: `config /tars/application/server/Y<servant>: "X.S.FooObj" is also served by adapter X.S.FooObjAdapter`,
	} {
		c := mustParseConf(t, "<tars>\n<application>\n<server>\napp=A\nserver=S\n"+server+"\n</server>\n</application>\n</tars>\n")
		if _, err := LoadConfig(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("server %q: error %v, want %q", server, err, want)
		}
	}
}

func TestConfReader(t *testing.T) {
	r := &ConfReader{C: mustParseConf(t, "<a>\nlist= x, ,y ,\nn=5\nempty=\nbad=x\nms=abc\n</a>\n")}
	if got := r.List("/a<list>"); !reflect.DeepEqual(got, []string{"x", "y"}) {
		t.Errorf("List = %q", got)
	}
	if r.List("/a<none>") != nil || r.Str("/a<empty>", "d") != "d" || r.Int("/a<n>", 1, 0) != 5 || r.Int("/a<none>", 7, 0) != 7 {
		t.Error("defaults or values wrong")
	}
	if r.Err != nil {
		t.Fatalf("Err = %v before any bad value", r.Err)
	}
	if r.Int("/a<bad>", 3, 0) != 3 || r.Ms("/a<ms>", time.Second, 0) != time.Second {
		t.Error("a bad value did not give the default")
	}
	if r.Err == nil || r.Err.Error() != `config /a<bad>: bad value "x" (want a whole number >= 0)` {
		t.Errorf("Err = %v, want the first bad value", r.Err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "10M": 10 << 20, "10mb": 10 << 20, "1G": 1 << 30, "512k": 512 << 10, "7B": 7, "3KB": 3 << 10} {
		if got, ok := parseSize(in); !ok || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "M", "B", "0", "-1", "1T", "1.5M", "+1", "9223372036854775807K", " 1"} {
		if got, ok := parseSize(in); ok {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func FuzzParseConf(f *testing.F) {
	sample, err := os.ReadFile("testdata/tarsconf/sample.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte("\xef\xbb\xbf<a>\r\nk\\=x=v\\n\r\n<b>\nbare\n</b>\n</a>\n<a>\nallow=<none>\n</a>"))
	f.Add([]byte("<a>\n</b>"))
	esc := strings.NewReplacer(`\`, `\\`, "=", `\=`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConf("f.conf", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.conf:") {
				t.Fatalf("error %q does not say where", err)
			}
			return
		}
		// Every reported key can be looked up again, and the tree written
		// back out with escapes parses to the same tree.
		var b strings.Builder
		var write func(path string)
		write = func(path string) {
			for _, k := range c.Keys(path) {
				v, ok := c.Lookup(path + "<" + k + ">")
				if !ok || c.Get(path+"<"+k+">") != v {
					t.Fatalf("key %q of %q reported but Lookup = %q, %v", k, path, v, ok)
				}
				b.WriteString(esc.Replace(k) + "=" + esc.Replace(v) + "\n")
			}
			for _, s := range c.Sections(path) {
				b.WriteString("<" + s + ">\n")
				write(path + "/" + s)
				b.WriteString("</" + s + ">\n")
			}
		}
		write("")
		again, err := ParseConf("again.conf", []byte(b.String()))
		if err != nil {
			t.Fatalf("the tree written out fails to parse: %v\n%s", err, b.String())
		}
		if got, want := confTree(again), confTree(c); !reflect.DeepEqual(got, want) {
			t.Fatalf("the tree written out parses to\n%q\nwant\n%q", got, want)
		}
		// The typed view never panics, whatever it makes of the values.
		_, _ = LoadConfig(c)
	})
}
