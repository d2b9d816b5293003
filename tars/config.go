package tars

import (
	"errors"
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
	if r.Err == nil {
		r.Err = fmt.Errorf("config %s: bad value %q (want %s)", path, value, want)
	}
}

func (r *ConfReader) Str(path, def string) string {
	if v, ok := r.C.Lookup(path); ok && v != "" {
		return v
	}
	return def
}

// Int reads a whole number of at least min.
func (r *ConfReader) Int(path string, def, min int) int {
	v := r.Str(path, "")
	n, err := strconv.Atoi(v)
	switch {
	case v == "":
	case err != nil || n < min:
		r.Fail(path, v, fmt.Sprintf("a whole number >= %d", min))
	default:
		return n
	}
	return def
}

// Ms reads a duration written in milliseconds, as Tars writes them.
func (r *ConfReader) Ms(path string, def time.Duration, min int) time.Duration {
	v := r.Str(path, "")
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case v == "":
	case err != nil || n < int64(min) || n > math.MaxInt64/int64(time.Millisecond):
		r.Fail(path, v, fmt.Sprintf("milliseconds >= %d", min))
	default:
		return time.Duration(n) * time.Millisecond
	}
	return def
}

// Size reads a byte count: a number with an optional K, M or G suffix
// (powers of 1024, an optional trailing B, any case).
func (r *ConfReader) Size(path string, def int64) int64 {
	v := r.Str(path, "")
	n, err := parseSize(v)
	switch {
	case v == "":
	case err != nil:
		r.Fail(path, v, "a positive size such as 65536, 512K, 10M or 1G")
	default:
		return n
	}
	return def
}

func parseSize(s string) (int64, error) {
	num := strings.TrimSuffix(strings.ToUpper(s), "B")
	mult := int64(1)
	if i := strings.IndexAny(num, "KMG"); i >= 0 && i == len(num)-1 {
		mult = 1 << (10 * (1 + strings.IndexByte("KMG", num[i])))
		num = num[:i]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult || strings.HasPrefix(num, "+") {
		return 0, errors.New("bad size")
	}
	return n * mult, nil
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
		if _, err := ParseProxy(v); err != nil && r.Err == nil {
			r.Err = fmt.Errorf("config %s: %w", path, err)
		}
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

func (r *ConfReader) endpoint(path string) (Endpoint, bool) {
	v := r.Str(path, "")
	if v == "" {
		return Endpoint{}, false
	}
	e, err := ParseEndpoint(v)
	if err != nil && r.Err == nil {
		r.Err = fmt.Errorf("config %s: %w", path, err)
	}
	return e, err == nil
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
		App:                 r.Str(s("app"), ""),
		Server:              r.Str(s("server"), ""),
		LocalIP:             r.Str(s("localip"), ""),
		Node:                r.Proxy(s("node"), ""),
		ConfigObj:           r.Proxy(s("config"), ""),
		BasePath:            r.Str(s("basepath"), ""),
		DataPath:            r.Str(s("datapath"), ""),
		LogPath:             r.Str(s("logpath"), ""),
		LogSize:             r.Size(s("logsize"), 50<<20),
		LogNum:              r.Int(s("lognum"), 10, 1),
		DeactivatingTimeout: r.Ms(s("deactivating-timeout"), 3*time.Second, 0),
		MaxPacket:           r.IntSize(s("maxPackageLength"), DefaultMaxPacket),
	}
	if cfg.App == "" {
		return nil, fmt.Errorf("config %s: not set", s("app"))
	}
	if cfg.Server == "" {
		return nil, fmt.Errorf("config %s: not set", s("server"))
	}
	if e, ok := r.endpoint(s("local")); ok {
		cfg.Local = &e
	}
	level := r.Str(s("logLevel"), "INFO")
	if _, ok := logLevels[strings.ToUpper(level)]; ok {
		cfg.LogLevel = strings.ToUpper(level)
	} else {
		r.Fail(s("logLevel"), level, "DEBUG, INFO, WARN, ERROR or NONE")
	}
	cfg.Locator = r.Proxy(cl("locator"), "")
	cfg.SyncInvokeTimeout = r.Ms(cl("sync-invoke-timeout"), 3*time.Second, 1)
	cfg.RefreshEndpointInterval = r.Ms(cl("refresh-endpoint-interval"), time.Minute, 1)
	cfg.ReportInterval = r.Ms(cl("report-interval"), time.Minute, 1)
	cfg.Stat = r.Proxy(cl("stat"), "")
	cfg.Property = r.Proxy(cl("property"), "")
	cfg.ModuleName = r.Str(cl("modulename"), cfg.App+"."+cfg.Server)
	cfg.KeepAliveInterval = r.Ms(s("keepalive-interval"), 10*time.Second, 1)

	servants := map[string]string{}
	for _, name := range c.Sections(serverPath) {
		p := serverPath + "/" + name
		a := AdapterConfig{
			Name:     name,
			Servant:  r.Str(p+"<servant>", ""),
			Protocol: r.Str(p+"<protocol>", "tars"),
			Allow:    r.List(p + "<allow>"),
			MaxConns: r.Int(p+"<maxconns>", 1024, 1),
		}
		if r.Err != nil {
			return nil, r.Err
		}
		if c.Get(p+"<endpoint>") == "" {
			return nil, fmt.Errorf("config %s<endpoint>: not set", p)
		}
		a.Endpoint, _ = r.endpoint(p + "<endpoint>")
		if a.Servant == "" {
			return nil, fmt.Errorf("config %s<servant>: not set", p)
		}
		if other, dup := servants[a.Servant]; dup {
			return nil, fmt.Errorf("config %s<servant>: %q is also served by adapter %s", p, a.Servant, other)
		}
		servants[a.Servant] = name
		if a.Protocol != "tars" && a.Protocol != "not_tars" {
			r.Fail(p+"<protocol>", a.Protocol, "tars or not_tars")
		}
		if r.Err != nil {
			return nil, r.Err
		}
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
