package tars

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
