package main

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

//go:embed default.conf
var defaultConfData []byte

var defaultConf = sync.OnceValue(func() *tars.Conf {
	c, err := tars.ParseConf("default.conf", defaultConfData)
	if err != nil {
		panic("embedded " + err.Error()) // caught by the tests
	}
	return c
})

// DefaultConf returns the embedded default config, used when the server
// runs without a Tars platform (go run .).
func DefaultConf() *tars.Conf { return defaultConf() }

// ServerConfig is the typed view of a config, with defaults filled in.
type ServerConfig struct {
	App, Server, LocalIP string
	Local                *tars.Endpoint // admin endpoint (local), nil if unset

	// Proxy strings of the framework services; "" when not configured.
	// notify and log are accepted and ignored.
	Node, ConfigObj string

	BasePath, DataPath, LogPath string

	LogSize  int64  // bytes; logsize accepts 10M, 1G, 512K or bytes
	LogNum   int    // rotated log files kept
	LogLevel string // DEBUG, INFO, WARN, ERROR or NONE

	DeactivatingTimeout time.Duration
	MaxPacket           int // largest Tars packet accepted, bytes

	Adapters []AdapterConfig
	Client   ClientConfig
	Settings Settings // from /tars/application/websocket over DefaultSettings()

	// Files to pull from ConfigObj at start (websocket<config-files>).
	PullConfigs []string
}

// AdapterConfig is one adapter section under /tars/application/server.
type AdapterConfig struct {
	Name     string // the section name, e.g. TestApp.WebsocketServer.PushObjAdapter
	Endpoint tars.Endpoint
	Servant  string
	Protocol string   // "tars" or "not_tars"
	Allow    []string // addresses allowed to connect; empty allows all
	MaxConns int      // threads, queuecap and queuetimeout are accepted and ignored
}

// ClientConfig is /tars/application/client.
type ClientConfig struct {
	Locator                                 string        // registry proxy; "" runs without one
	SyncInvokeTimeout                       time.Duration // async-invoke-timeout is accepted and ignored
	RefreshEndpointInterval, ReportInterval time.Duration
	Stat, Property, ModuleName              string
	KeepAliveInterval                       time.Duration // server<keepalive-interval>: tarsnode heartbeats
}

// Defaults for keys a config leaves out.
const (
	defaultLogSize         = 50 << 20
	defaultLogNum          = 10
	defaultLogLevel        = "INFO"
	defaultMaxPacket       = 10 << 20
	defaultAdapterMaxConns = 1024
)

const (
	serverPath    = "/tars/application/server"
	clientPath    = "/tars/application/client"
	websocketPath = "/tars/application/websocket"
)

// confReader reads typed values and keeps the first error, which names the
// key path and the value.
type confReader struct {
	c   *tars.Conf
	err error
}

func (r *confReader) fail(path, value, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("config %s: bad value %q (want %s)", path, value, want)
	}
}

func (r *confReader) str(path, def string) string {
	if v, ok := r.c.Lookup(path); ok && v != "" {
		return v
	}
	return def
}

func (r *confReader) int(path string, def, min int) int {
	v, ok := r.c.Lookup(path)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		r.fail(path, v, fmt.Sprintf("a whole number >= %d", min))
		return def
	}
	return n
}

// ms reads a duration written in milliseconds, as Tars writes them.
func (r *confReader) ms(path string, def time.Duration, min int) time.Duration {
	v, ok := r.c.Lookup(path)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < int64(min) || n > math.MaxInt64/int64(time.Millisecond) {
		r.fail(path, v, fmt.Sprintf("milliseconds >= %d", min))
		return def
	}
	return time.Duration(n) * time.Millisecond
}

// size reads a byte count: a number with an optional K, M or G suffix
// (powers of 1024, an optional trailing B, any case).
func (r *confReader) size(path string, def int64) int64 {
	v, ok := r.c.Lookup(path)
	if !ok || v == "" {
		return def
	}
	n, err := parseSize(v)
	if err != nil {
		r.fail(path, v, "a positive size such as 65536, 512K, 10M or 1G")
		return def
	}
	return n
}

func parseSize(s string) (int64, error) {
	num := strings.TrimSuffix(strings.ToUpper(s), "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(num, "K"):
		mult = 1 << 10
	case strings.HasSuffix(num, "M"):
		mult = 1 << 20
	case strings.HasSuffix(num, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		num = num[:len(num)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult || strings.HasPrefix(num, "+") {
		return 0, errors.New("bad size")
	}
	return n * mult, nil
}

func (r *confReader) intSize(path string, def int) int {
	n := r.size(path, int64(def))
	if n > math.MaxInt32 {
		r.fail(path, r.c.Get(path), "a size below 2G")
		return def
	}
	return int(n)
}

func (r *confReader) proxy(path, def string) string {
	v := r.str(path, def)
	if v != "" {
		if _, err := tars.ParseProxy(v); err != nil && r.err == nil {
			r.err = fmt.Errorf("config %s: %w", path, err)
		}
	}
	return v
}

func (r *confReader) endpoint(path string) (tars.Endpoint, bool) {
	v := r.str(path, "")
	if v == "" {
		return tars.Endpoint{}, false
	}
	e, err := tars.ParseEndpoint(v)
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("config %s: %w", path, err)
		}
		return tars.Endpoint{}, false
	}
	return e, true
}

// list splits a comma-separated value, dropping empty items.
func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// LoadServerConfig builds the typed view of c, filling defaults, and
// checks it: app and server are set, every adapter has a servant and a
// parsable endpoint and a known protocol, and numbers are numbers. Errors
// name the key path and the value.
func LoadServerConfig(c *tars.Conf) (*ServerConfig, error) {
	r := &confReader{c: c}
	sc := &ServerConfig{
		App:                 r.str(serverPath+"<app>", ""),
		Server:              r.str(serverPath+"<server>", ""),
		LocalIP:             r.str(serverPath+"<localip>", ""),
		Node:                r.proxy(serverPath+"<node>", ""),
		ConfigObj:           r.proxy(serverPath+"<config>", ""),
		BasePath:            r.str(serverPath+"<basepath>", ""),
		DataPath:            r.str(serverPath+"<datapath>", ""),
		LogPath:             r.str(serverPath+"<logpath>", ""),
		LogSize:             r.size(serverPath+"<logsize>", defaultLogSize),
		LogNum:              r.int(serverPath+"<lognum>", defaultLogNum, 1),
		DeactivatingTimeout: r.ms(serverPath+"<deactivating-timeout>", 3*time.Second, 0),
		MaxPacket:           r.intSize(serverPath+"<maxPackageLength>", defaultMaxPacket),
	}
	if sc.App == "" {
		return nil, fmt.Errorf("config %s<app>: not set", serverPath)
	}
	if sc.Server == "" {
		return nil, fmt.Errorf("config %s<server>: not set", serverPath)
	}
	if e, ok := r.endpoint(serverPath + "<local>"); ok {
		sc.Local = &e
	}
	level := r.str(serverPath+"<logLevel>", defaultLogLevel)
	switch up := strings.ToUpper(level); up {
	case "DEBUG", "INFO", "WARN", "ERROR", "NONE":
		sc.LogLevel = up
	default:
		r.fail(serverPath+"<logLevel>", level, "DEBUG, INFO, WARN, ERROR or NONE")
	}

	sc.Client = ClientConfig{
		Locator:                 r.proxy(clientPath+"<locator>", ""),
		SyncInvokeTimeout:       r.ms(clientPath+"<sync-invoke-timeout>", 3*time.Second, 1),
		RefreshEndpointInterval: r.ms(clientPath+"<refresh-endpoint-interval>", time.Minute, 1),
		ReportInterval:          r.ms(clientPath+"<report-interval>", time.Minute, 1),
		Stat:                    r.proxy(clientPath+"<stat>", ""),
		Property:                r.proxy(clientPath+"<property>", ""),
		ModuleName:              r.str(clientPath+"<modulename>", sc.App+"."+sc.Server),
		KeepAliveInterval:       r.ms(serverPath+"<keepalive-interval>", 10*time.Second, 1),
	}

	servants := map[string]string{}
	for _, name := range c.Sections(serverPath) {
		p := serverPath + "/" + name
		a := AdapterConfig{
			Name:     name,
			Servant:  r.str(p+"<servant>", ""),
			Protocol: r.str(p+"<protocol>", "tars"),
			Allow:    list(r.str(p+"<allow>", "")),
			MaxConns: r.int(p+"<maxconns>", defaultAdapterMaxConns, 1),
		}
		if r.err != nil {
			return nil, r.err
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
			r.fail(p+"<protocol>", a.Protocol, "tars or not_tars")
		}
		if r.err != nil {
			return nil, r.err
		}
		sc.Adapters = append(sc.Adapters, a)
	}

	if r.err != nil {
		return nil, r.err
	}
	var err error
	if sc.Settings, sc.PullConfigs, err = loadSettings(c, DefaultSettings()); err != nil {
		return nil, err
	}
	return sc, nil
}

// websocketKeys are the keys of <websocket>: the conf tags of Settings,
// and config-files.
var websocketKeys = func() map[string]bool {
	keys := map[string]bool{"config-files": true}
	for f := range reflect.TypeFor[Settings]().Fields() {
		keys[f.Tag.Get("conf")] = true
	}
	return keys
}()

// websocketSection returns the path of c's <websocket> section: in a
// server's config, or at the top of a file that holds only that section.
func websocketSection(c *tars.Conf) (string, bool) {
	for _, path := range []string{websocketPath, "/websocket"} {
		if c.Sections(path) != nil {
			return path, true
		}
	}
	return websocketPath, false
}

// loadSettings reads c's <websocket> section over base and checks the
// result; it returns the settings and the config files to pull at start.
// The section is ours, so an unknown key is an error: it is most likely a
// typo. Errors name the key path and the value.
func loadSettings(c *tars.Conf, base Settings) (Settings, []string, error) {
	path, _ := websocketSection(c)
	r := &confReader{c: c}
	for _, k := range c.Keys(path) {
		if !websocketKeys[k] && r.err == nil {
			r.err = fmt.Errorf("config %s<%s>: unknown key", path, k)
		}
	}
	p := func(key string) string { return path + "<" + key + ">" }
	d := base
	s := Settings{
		Store:         r.str(p("store"), d.Store),
		History:       r.int(p("history"), d.History, 0),
		MaxMessage:    r.intSize(p("max-message"), d.MaxMessage),
		QueueMessages: r.int(p("queue-messages"), d.QueueMessages, 1),
		QueueBytes:    r.intSize(p("queue-bytes"), d.QueueBytes),
		MaxRooms:      r.int(p("max-rooms"), d.MaxRooms, 1),
		MaxRoomName:   r.int(p("max-room-name"), d.MaxRoomName, 1),
		Origins:       list(r.str(p("origins"), strings.Join(d.Origins, ","))),
		MaxConnsPerIP: r.int(p("max-conns-per-ip"), d.MaxConnsPerIP, 0),
		CommandRate:   d.CommandRate,
		CommandBurst:  r.int(p("command-burst"), d.CommandBurst, 1),
		PingInterval:  r.ms(p("ping-interval"), d.PingInterval, 1),
		IdleTimeout:   r.ms(p("idle-timeout"), d.IdleTimeout, 1),
		WriteTimeout:  r.ms(p("write-timeout"), d.WriteTimeout, 1),
		PushToken:     r.str(p("push-token"), d.PushToken),
		RoomSecret:    r.str(p("room-secret"), d.RoomSecret),
		Hello:         r.proxy(p("hello"), d.Hello),
		Peers:         r.proxy(p("peers"), d.Peers),
		ClusterSecret: r.str(p("cluster-secret"), d.ClusterSecret),
		MaxHTTPBody:   r.size(p("max-http-body"), d.MaxHTTPBody),
		SendRate:      r.intSize(p("send-rate"), d.SendRate),
		Hosts:         list(r.str(p("hosts"), strings.Join(d.Hosts, ","))),
		ReadTimeout:   r.ms(p("http-read-timeout"), d.ReadTimeout, 1),
	}
	if s.Store != "file" && s.Store != "memory" {
		r.fail(p("store"), s.Store, "file or memory")
	}
	if v := r.str(p("command-rate"), ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			r.fail(p("command-rate"), v, "a positive number of commands per second")
		} else {
			s.CommandRate = f
		}
	}
	if v, ok := c.Lookup(p("ping-interval")); ok && r.err == nil && s.PingInterval >= s.IdleTimeout {
		r.fail(p("ping-interval"), v,
			fmt.Sprintf("less than idle-timeout (%d ms), or idle connections are dropped between pings", s.IdleTimeout.Milliseconds()))
	}
	if err := s.check(); r.err == nil && err != nil {
		r.err = fmt.Errorf("config %s: %w", path, err)
	}
	// A node with peers, listed or from the registry, takes their pushes
	// only with the secret; the value is never shown.
	if r.err == nil && (s.Peers != "" || c.Get(clientPath+"<locator>") != "") && len(s.ClusterSecret) < minClusterSecret {
		r.err = fmt.Errorf("config %s<cluster-secret>: required, at least %d characters, when peers or a locator is set: the nodes of a cluster prove themselves to each other with it",
			path, minClusterSecret)
	}
	return s, list(r.str(p("config-files"), "")), r.err
}

// AdapterFor returns the adapter serving servant.
func (sc *ServerConfig) AdapterFor(servant string) (*AdapterConfig, bool) {
	for i := range sc.Adapters {
		if sc.Adapters[i].Servant == servant {
			return &sc.Adapters[i], true
		}
	}
	return nil, false
}
