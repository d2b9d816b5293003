package tars

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config is what the framework reads from <tars><application>: the
// <server> keys and adapters and the <client> keys, defaults filled in.
type Config struct {
	App, Server, LocalIP string
	Version              string    // reported by tars.viewversion; "" reads the build info
	Local                *Endpoint // AdminObj's endpoint; nil: none

	// Proxies of the framework services; "" when not configured.
	Node, ConfigObj, Locator, Stat, Property string

	BasePath, DataPath, LogPath string
	LogSize                     int64  // bytes
	LogNum                      int    // rotated log files kept
	LogLevel                    string // DEBUG, INFO, WARN, ERROR or NONE

	DeactivatingTimeout time.Duration
	MaxPacket           int // largest Tars packet accepted, bytes

	SyncInvokeTimeout, RefreshEndpointInterval time.Duration
	ReportInterval, KeepAliveInterval          time.Duration
	ModuleName                                 string // the caller's name in stat reports

	Adapters []AdapterConfig
}

// AdapterConfig is one adapter section under <server>.
type AdapterConfig struct {
	Name     string // the section name, e.g. TestApp.WebsocketServer.PushObjAdapter
	Servant  string
	Protocol string // "tars" or "not_tars"
	Endpoint Endpoint
	Allow    []string // client addresses allowed to connect; empty allows all
	MaxConns int
}

const (
	serverPath = "/tars/application/server"
	clientPath = "/tars/application/client"
)

// LoadConfig reads the framework keys of c and checks them: app and server
// are set, every adapter has a servant, a parsable endpoint and a known
// protocol, and numbers are numbers. Errors name the key path and value.
func LoadConfig(c *Conf) (*Config, error) {
	r := &ConfReader{C: c}
	s := func(key string) string { return serverPath + "<" + key + ">" }
	cl := func(key string) string { return clientPath + "<" + key + ">" }
	cfg := &Config{
		App:                     r.required(s("app")),
		Server:                  r.required(s("server")),
		LocalIP:                 r.Str(s("localip"), ""),
		Node:                    r.Proxy(s("node"), ""),
		ConfigObj:               r.Proxy(s("config"), ""),
		BasePath:                r.Str(s("basepath"), ""),
		DataPath:                r.Str(s("datapath"), ""),
		LogPath:                 r.Str(s("logpath"), ""),
		LogSize:                 r.Size(s("logsize"), 50<<20),
		LogNum:                  r.Int(s("lognum"), 10, 1),
		LogLevel:                strings.ToUpper(r.Str(s("logLevel"), "INFO")),
		DeactivatingTimeout:     r.Ms(s("deactivating-timeout"), 3*time.Second, 0),
		MaxPacket:               r.IntSize(s("maxPackageLength"), DefaultMaxPacket),
		KeepAliveInterval:       r.Ms(s("keepalive-interval"), 10*time.Second, 1),
		Locator:                 r.Proxy(cl("locator"), ""),
		SyncInvokeTimeout:       r.Ms(cl("sync-invoke-timeout"), 3*time.Second, 1),
		RefreshEndpointInterval: r.Ms(cl("refresh-endpoint-interval"), time.Minute, 1),
		ReportInterval:          r.Ms(cl("report-interval"), time.Minute, 1),
		Stat:                    r.Proxy(cl("stat"), ""),
		Property:                r.Proxy(cl("property"), ""),
	}
	cfg.ModuleName = r.Str(cl("modulename"), cfg.App+"."+cfg.Server)
	if _, ok := logLevels[cfg.LogLevel]; !ok {
		r.Fail(s("logLevel"), r.Str(s("logLevel"), ""), "DEBUG, INFO, WARN, ERROR or NONE")
	}
	if e, v := parsed(r, s("local"), "", ParseEndpoint); v != "" {
		cfg.Local = &e
	}
	for _, name := range c.Sections(serverPath) {
		p := serverPath + "/" + name
		a := AdapterConfig{Name: name, Allow: r.List(p + "<allow>"), MaxConns: r.Int(p+"<maxconns>", 1024, 1)}
		a.Endpoint, _ = parsed(r, p+"<endpoint>", r.required(p+"<endpoint>"), ParseEndpoint) // required, then parsed
		a.Servant = r.required(p + "<servant>")
		if prev, dup := cfg.Adapter(a.Servant); dup {
			r.check(p+"<servant>", fmt.Errorf("%q is also served by adapter %s", a.Servant, prev.Name))
		}
		if a.Protocol = r.Str(p+"<protocol>", "tars"); !slices.Contains([]string{"tars", "not_tars"}, a.Protocol) {
			r.Fail(p+"<protocol>", a.Protocol, "tars or not_tars")
		}
		cfg.Adapters = append(cfg.Adapters, a)
	}
	if r.Err != nil {
		return nil, r.Err
	}
	return cfg, nil
}

// required reads a value that must be set.
func (r *ConfReader) required(path string) string {
	v := r.Str(path, "")
	if v == "" {
		r.check(path, errors.New("not set"))
	}
	return v
}

// ServantName returns the full name "App.Server.obj" of one of this server's objects.
func (c *Config) ServantName(obj string) string { return c.App + "." + c.Server + "." + obj }

// Adapter returns the adapter serving servant.
func (c *Config) Adapter(servant string) (AdapterConfig, bool) {
	i := slices.IndexFunc(c.Adapters, func(a AdapterConfig) bool { return a.Servant == servant })
	if i < 0 {
		return AdapterConfig{}, false
	}
	return c.Adapters[i], true
}
