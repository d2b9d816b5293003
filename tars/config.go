package tars

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ConfReader reads typed values from C and keeps the first error in Err,
// which names the key path and the value. An absent or empty key gives the
// default.
type ConfReader struct {
	C   *Conf
	Err error
}

// Fail records that the value at path is not what was wanted.
func (r *ConfReader) Fail(path, value, want string) {
	r.check(path, fmt.Errorf("bad value %q (want %s)", value, want))
}

func (r *ConfReader) check(path string, err error) {
	if err != nil && r.Err == nil {
		r.Err = fmt.Errorf("config %s: %w", path, err)
	}
}

func (r *ConfReader) Str(path, def string) string {
	if v, ok := r.C.Lookup(path); ok && v != "" {
		return v
	}
	return def
}

// read parses the value at path; a bad one is recorded and gives def.
func read[T any](r *ConfReader, path string, def T, want string, parse func(string) (T, bool)) T {
	v := r.Str(path, "")
	if v == "" {
		return def
	}
	if n, ok := parse(v); ok {
		return n
	}
	r.Fail(path, v, want)
	return def
}

// Int reads a whole number of at least min.
func (r *ConfReader) Int(path string, def, min int) int {
	return read(r, path, def, fmt.Sprintf("a whole number >= %d", min), func(v string) (int, bool) {
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= min
	})
}

// Ms reads a duration written in milliseconds, as Tars writes them.
func (r *ConfReader) Ms(path string, def time.Duration, min int) time.Duration {
	return read(r, path, def, fmt.Sprintf("milliseconds >= %d", min), func(v string) (time.Duration, bool) {
		n, err := strconv.ParseInt(v, 10, 64)
		ok := err == nil && n >= int64(min) && n <= math.MaxInt64/int64(time.Millisecond)
		return time.Duration(n) * time.Millisecond, ok
	})
}

// Size reads a byte count: a number with an optional K, M or G suffix
// (powers of 1024, an optional trailing B, any case).
func (r *ConfReader) Size(path string, def int64) int64 {
	return read(r, path, def, "a positive size such as 65536, 512K, 10M or 1G", parseSize)
}

func parseSize(s string) (int64, bool) {
	num := strings.TrimSuffix(strings.ToUpper(s), "B")
	mult := int64(1)
	if i := strings.IndexAny(num, "KMG"); i >= 0 && i == len(num)-1 {
		mult = 1 << (10 * (1 + strings.IndexByte("KMG", num[i])))
		num = num[:i]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	return n * mult, err == nil && n > 0 && n <= math.MaxInt64/mult && !strings.HasPrefix(num, "+")
}

// IntSize reads a size below 2G.
func (r *ConfReader) IntSize(path string, def int) int {
	n := r.Size(path, int64(def))
	if n > math.MaxInt32 {
		r.Fail(path, r.C.Get(path), "a size below 2G")
		return def
	}
	return int(n)
}

// Proxy reads a proxy string, checked with ParseProxy.
func (r *ConfReader) Proxy(path, def string) string {
	v := r.Str(path, def)
	if v != "" {
		_, err := ParseProxy(v)
		r.check(path, err)
	}
	return v
}

// List reads a comma-separated value, dropping empty items.
func (r *ConfReader) List(path string) []string {
	var out []string
	for _, s := range strings.Split(r.Str(path, ""), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

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
		App:                     r.Str(s("app"), ""),
		Server:                  r.Str(s("server"), ""),
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
	for _, k := range []string{"app", "server"} {
		if r.Str(s(k), "") == "" {
			return nil, fmt.Errorf("config %s: not set", s(k))
		}
	}
	if _, ok := logLevels[cfg.LogLevel]; !ok {
		r.Fail(s("logLevel"), r.Str(s("logLevel"), ""), "DEBUG, INFO, WARN, ERROR or NONE")
	}
	if v := r.Str(s("local"), ""); v != "" {
		e, err := ParseEndpoint(v)
		r.check(s("local"), err)
		cfg.Local = &e
	}
	servants := map[string]string{}
	for _, name := range c.Sections(serverPath) {
		p := serverPath + "/" + name
		a := AdapterConfig{Name: name, Servant: r.Str(p+"<servant>", ""), Protocol: r.Str(p+"<protocol>", "tars"),
			Allow: r.List(p + "<allow>"), MaxConns: r.Int(p+"<maxconns>", 1024, 1)}
		var err error
		switch v := r.Str(p+"<endpoint>", ""); {
		case r.Err != nil:
		case v == "":
			return nil, fmt.Errorf("config %s<endpoint>: not set", p)
		case a.Servant == "":
			return nil, fmt.Errorf("config %s<servant>: not set", p)
		case servants[a.Servant] != "":
			return nil, fmt.Errorf("config %s<servant>: %q is also served by adapter %s", p, a.Servant, servants[a.Servant])
		case a.Protocol != "tars" && a.Protocol != "not_tars":
			r.Fail(p+"<protocol>", a.Protocol, "tars or not_tars")
		default:
			a.Endpoint, err = ParseEndpoint(v)
			r.check(p+"<endpoint>", err)
		}
		if r.Err != nil {
			return nil, r.Err
		}
		servants[a.Servant] = name
		cfg.Adapters = append(cfg.Adapters, a)
	}
	if r.Err != nil {
		return nil, r.Err
	}
	return cfg, nil
}

// ServantName returns the full name of one of this server's objects:
// "App.Server.obj".
func (c *Config) ServantName(obj string) string { return c.App + "." + c.Server + "." + obj }

// Adapter returns the adapter serving servant.
func (c *Config) Adapter(servant string) (AdapterConfig, bool) {
	for _, a := range c.Adapters {
		if a.Servant == servant {
			return a, true
		}
	}
	return AdapterConfig{}, false
}
