package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tarsws/websocketserver/tars"
)

// Conf is a parsed config file in the format tarsnode writes:
//
//	<tars>
//	  <application>
//	    <server>
//	      app=TestApp
//	    </server>
//	  </application>
//	</tars>
//
// Values are addressed by paths such as "/tars/application/server<app>":
// the section path, then the key in angle brackets. The zero value is an
// empty config. A Conf is never changed after parsing, so it may be shared.
type Conf struct {
	root confSection
}

type confSection struct {
	name   string
	keys   []string // file order of first appearance
	values map[string]string
	subs   []*confSection // file order of first appearance
}

func (s *confSection) sub(name string) *confSection {
	for _, c := range s.subs {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (s *confSection) set(key, value string) {
	if s.values == nil {
		s.values = make(map[string]string)
	}
	if _, ok := s.values[key]; !ok {
		s.keys = append(s.keys, key)
	}
	s.values[key] = value
}

// ParseConf parses a config file; name is used in error messages, which
// read "NAME:LINE: what".
//
// Lines are trimmed of white space and byte order marks, so CRLF files,
// indentation and a leading BOM are fine. Blank lines and lines
// starting with '#' are ignored. A line "<name>" opens a section and
// "</name>" closes it; names must match. Any other line is "key=value",
// split at the first '=' that is not escaped, with the key and the value
// trimmed; a line without '=' is a key with an empty value. Only lines
// starting with '<' are tags, so "allow=<none>" is an ordinary value. The
// escapes \= \\ \n \r \t work in keys and values; an escaped '=' in a key is
// part of the key ("a\=b=c" sets key "a=b"); a backslash before any other
// character is kept as written, so Windows paths need no escaping. The last
// duplicate key wins; a section opened twice in the same parent is one
// section.
func ParseConf(name string, data []byte) (*Conf, error) {
	c := &Conf{}
	stack := []*confSection{&c.root}
	opened := []int{0} // line of each open tag on the stack
	lineNo := 0
	for len(data) > 0 {
		var raw []byte
		raw, data, _ = bytes.Cut(data, []byte("\n"))
		lineNo++
		line := trimConf(string(raw))
		cur := stack[len(stack)-1]
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '<':
			if line[len(line)-1] != '>' || len(line) < 2 {
				return nil, fmt.Errorf("%s:%d: section tag %q does not end with '>'", name, lineNo, line)
			}
			inner := line[1 : len(line)-1]
			closing := strings.HasPrefix(inner, "/")
			if closing {
				inner = inner[1:]
			}
			secName := trimConf(inner)
			if err := checkSectionName(secName); err != nil {
				return nil, fmt.Errorf("%s:%d: %s in %q", name, lineNo, err, line)
			}
			if !closing {
				s := cur.sub(secName)
				if s == nil {
					s = &confSection{name: secName}
					cur.subs = append(cur.subs, s)
				}
				stack = append(stack, s)
				opened = append(opened, lineNo)
				continue
			}
			if len(stack) == 1 {
				return nil, fmt.Errorf("%s:%d: </%s> closes no open section", name, lineNo, secName)
			}
			if cur.name != secName {
				return nil, fmt.Errorf("%s:%d: </%s> does not match <%s> opened at line %d",
					name, lineNo, secName, cur.name, opened[len(opened)-1])
			}
			stack = stack[:len(stack)-1]
			opened = opened[:len(opened)-1]
		default:
			key, value := splitConfLine(line)
			if key == "" {
				return nil, fmt.Errorf("%s:%d: empty key in %q", name, lineNo, line)
			}
			cur.set(key, value)
		}
	}
	if len(stack) > 1 {
		return nil, fmt.Errorf("%s:%d: <%s> is never closed", name, opened[len(opened)-1], stack[len(stack)-1].name)
	}
	return c, nil
}

// trimConf trims white space and byte order marks, which editors leave at
// the start of a file and concatenation leaves at the start of any line.
func trimConf(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '\ufeff' })
}

// checkSectionName rejects names that could not be written in a path.
func checkSectionName(n string) error {
	if n == "" {
		return errors.New("empty section name")
	}
	if i := strings.IndexFunc(n, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("/<>\\", r)
	}); i >= 0 {
		r, _ := utf8.DecodeRuneInString(n[i:])
		return fmt.Errorf("section name %q may not contain %q", n, r)
	}
	return nil
}

// splitConfLine splits a trimmed line at its first unescaped '=' and
// unescapes both halves.
func splitConfLine(line string) (key, value string) {
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++ // the next byte is escaped
		case '=':
			return unescapeConf(trimConf(line[:i])), unescapeConf(trimConf(line[i+1:]))
		}
	}
	return unescapeConf(line), ""
}

func unescapeConf(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if r, ok := confUnescapes[s[i+1]]; ok {
				b.WriteByte(r)
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var confUnescapes = map[byte]byte{'=': '=', '\\': '\\', 'n': '\n', 'r': '\r', 't': '\t'}

// LoadConf reads and parses the config file at path.
func LoadConf(path string) (*Conf, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConf(path, data)
}

// splitPath splits "/a/b<key>" into section names and the key; hasKey
// reports whether the path names a key. Empty segments are ignored, so "/"
// and "" are the root.
func splitPath(path string) (sections []string, key string, hasKey bool) {
	if i := strings.IndexByte(path, '<'); i >= 0 && strings.HasSuffix(path, ">") {
		path, key, hasKey = path[:i], path[i+1:len(path)-1], true
	}
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			sections = append(sections, s)
		}
	}
	return sections, key, hasKey
}

func (c *Conf) section(names []string) *confSection {
	if c == nil {
		return nil
	}
	s := &c.root
	for _, n := range names {
		if s = s.sub(n); s == nil {
			return nil
		}
	}
	return s
}

// Lookup returns the value at a path such as "/tars/application/server<app>"
// and whether the key is present.
func (c *Conf) Lookup(path string) (string, bool) {
	names, key, hasKey := splitPath(path)
	s := c.section(names)
	if !hasKey || s == nil {
		return "", false
	}
	v, ok := s.values[key]
	return v, ok
}

// Get returns the value at a path, or "" if it is absent.
func (c *Conf) Get(path string) string {
	v, _ := c.Lookup(path)
	return v
}

// Sections returns the names of a section's child sections in file order,
// e.g. Sections("/tars/application/server") lists the adapters.
func (c *Conf) Sections(path string) []string {
	names, _, hasKey := splitPath(path)
	s := c.section(names)
	if hasKey || s == nil {
		return nil
	}
	out := make([]string, len(s.subs))
	for i, sub := range s.subs {
		out[i] = sub.name
	}
	return out
}

// Keys returns the keys of a section in file order.
func (c *Conf) Keys(path string) []string {
	names, _, hasKey := splitPath(path)
	s := c.section(names)
	if hasKey || s == nil {
		return nil
	}
	return append([]string(nil), s.keys...)
}

// String formats c in the same file format; ParseConf reads it back to an
// equal Conf.
func (c *Conf) String() string {
	var b strings.Builder
	if c != nil {
		writeSection(&b, &c.root, "")
	}
	return b.String()
}

func writeSection(b *strings.Builder, s *confSection, indent string) {
	for _, k := range s.keys {
		b.WriteString(indent + escapeConf(k))
		if v := s.values[k]; v != "" {
			b.WriteString("=" + escapeConf(v))
		}
		b.WriteByte('\n')
	}
	for _, sub := range s.subs {
		b.WriteString(indent + "<" + sub.name + ">\n")
		writeSection(b, sub, indent+"  ")
		b.WriteString(indent + "</" + sub.name + ">\n")
	}
}

var confEscaper = strings.NewReplacer(`\`, `\\`, "=", `\=`, "\n", `\n`, "\r", `\r`, "\t", `\t`)

func escapeConf(s string) string { return confEscaper.Replace(s) }

//go:embed default.conf
var defaultConfData []byte

var defaultConf = sync.OnceValue(func() *Conf {
	c, err := ParseConf("default.conf", defaultConfData)
	if err != nil {
		panic("embedded " + err.Error()) // caught by the tests
	}
	return c
})

// DefaultConf returns the embedded default config, used when the server
// runs without a Tars platform (go run .).
func DefaultConf() *Conf { return defaultConf() }

// ServerConfig is the typed view of a config, with defaults filled in.
type ServerConfig struct {
	App, Server, LocalIP string
	Local                *tars.Endpoint // admin endpoint (local), nil if unset

	// Proxy strings of the framework services; "" when not configured.
	Node, ConfigObj, NotifyObj, LogObj string

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
	Name         string // the section name, e.g. TestApp.WebsocketServer.PushObjAdapter
	Endpoint     tars.Endpoint
	Servant      string
	Protocol     string   // "tars" or "not_tars"
	Allow        []string // addresses allowed to connect; empty allows all
	MaxConns     int
	Threads      int
	QueueCap     int
	QueueTimeout time.Duration
}

// ClientConfig is /tars/application/client.
type ClientConfig struct {
	Locator                                 string // registry proxy; "" runs without one
	SyncInvokeTimeout, AsyncInvokeTimeout   time.Duration
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
	defaultAdapterThreads  = 1
	defaultAdapterQueueCap = 10240
)

const (
	serverPath    = "/tars/application/server"
	clientPath    = "/tars/application/client"
	websocketPath = "/tars/application/websocket"
)

// confReader reads typed values and keeps the first error, which names the
// key path and the value.
type confReader struct {
	c   *Conf
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
func LoadServerConfig(c *Conf) (*ServerConfig, error) {
	r := &confReader{c: c}
	sc := &ServerConfig{
		App:                 r.str(serverPath+"<app>", ""),
		Server:              r.str(serverPath+"<server>", ""),
		LocalIP:             r.str(serverPath+"<localip>", ""),
		Node:                r.proxy(serverPath+"<node>", ""),
		ConfigObj:           r.proxy(serverPath+"<config>", ""),
		NotifyObj:           r.proxy(serverPath+"<notify>", ""),
		LogObj:              r.proxy(serverPath+"<log>", ""),
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
		AsyncInvokeTimeout:      r.ms(clientPath+"<async-invoke-timeout>", 5*time.Second, 1),
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
			Name:         name,
			Servant:      r.str(p+"<servant>", ""),
			Protocol:     r.str(p+"<protocol>", "tars"),
			Allow:        list(r.str(p+"<allow>", "")),
			MaxConns:     r.int(p+"<maxconns>", defaultAdapterMaxConns, 1),
			Threads:      r.int(p+"<threads>", defaultAdapterThreads, 1),
			QueueCap:     r.int(p+"<queuecap>", defaultAdapterQueueCap, 1),
			QueueTimeout: r.ms(p+"<queuetimeout>", time.Minute, 1),
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

	sc.Settings, sc.PullConfigs = r.settings()
	if r.err != nil {
		return nil, r.err
	}
	// A node with peers, listed or from the registry, takes their pushes
	// only with the secret; the value is never shown.
	if (sc.Settings.Peers != "" || sc.Client.Locator != "") && len(sc.Settings.ClusterSecret) < minClusterSecret {
		return nil, fmt.Errorf("config %s<cluster-secret>: required, at least %d characters, when peers or a locator is set: the nodes of a cluster prove themselves to each other with it",
			websocketPath, minClusterSecret)
	}
	return sc, nil
}

var websocketKeys = map[string]bool{
	"store": true, "history": true, "max-message": true, "queue-messages": true, "queue-bytes": true,
	"max-rooms": true, "max-room-name": true, "origins": true, "max-conns-per-ip": true,
	"command-rate": true, "command-burst": true, "ping-interval": true, "idle-timeout": true,
	"write-timeout": true, "push-token": true, "room-secret": true, "hello": true, "peers": true,
	"max-http-body": true, "config-files": true, "send-rate": true,
	"hosts": true, "http-read-timeout": true, "cluster-secret": true,
}

// settings reads /tars/application/websocket over DefaultSettings. The
// section is ours, so an unknown key is an error: it is most likely a typo.
func (r *confReader) settings() (Settings, []string) {
	for _, k := range r.c.Keys(websocketPath) {
		if !websocketKeys[k] && r.err == nil {
			r.err = fmt.Errorf("config %s<%s>: unknown key", websocketPath, k)
		}
	}
	p := func(key string) string { return websocketPath + "<" + key + ">" }
	d := DefaultSettings()
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
	if r.err == nil && s.PingInterval >= s.IdleTimeout {
		r.fail(p("ping-interval"), r.c.Get(p("ping-interval")),
			fmt.Sprintf("less than idle-timeout (%d ms), or idle connections are dropped between pings", s.IdleTimeout.Milliseconds()))
	}
	if err := s.check(); r.err == nil && err != nil {
		r.err = fmt.Errorf("config %s: %w", websocketPath, err)
	}
	return s, list(r.str(p("config-files"), ""))
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

// HTTPAdapter returns the first adapter with protocol not_tars: the one
// serving browsers and HTTP triggers.
func (sc *ServerConfig) HTTPAdapter() (*AdapterConfig, bool) {
	for i := range sc.Adapters {
		if sc.Adapters[i].Protocol == "not_tars" {
			return &sc.Adapters[i], true
		}
	}
	return nil, false
}
