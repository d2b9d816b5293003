package tars

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Conf is a parsed config file in the format tarsnode writes: nested
// <section>...</section> lines holding key=value lines. A value is
// addressed by a path such as "/tars/application/server<app>". The zero
// value is empty; a Conf never changes, so it may be shared.
type Conf struct{ root confSection }

type confSection struct {
	name   string
	keys   []string // in file order, as are subs
	values map[string]string
	subs   []*confSection
	line   int // where it was last opened, for errors
}

// sub returns the child section called name, nil if none.
func (s *confSection) sub(name string) *confSection {
	if i := slices.IndexFunc(s.subs, func(c *confSection) bool { return c.name == name }); i >= 0 {
		return s.subs[i]
	}
	return nil
}

// ParseConf parses a config file; errors read "NAME:LINE: what". Lines are
// trimmed of white space and byte order marks; blank lines and lines
// starting with '#' are ignored. "<name>" opens a section and "</name>"
// closes it; a section opened twice in one parent is one section. Any other
// line is "key=value", split at the first unescaped '=' (no '=': an empty
// value), the last duplicate winning. The escapes \= \\ \n \r \t work in
// keys and values; a backslash before anything else is kept, so Windows
// paths need no escaping.
func ParseConf(name string, data []byte) (*Conf, error) {
	c := &Conf{confSection{values: map[string]string{}}}
	stack := []*confSection{&c.root}
	for i, raw := range strings.Split(string(data), "\n") {
		line, top := trimConf(raw), stack[len(stack)-1]
		fail := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: "+format, append([]any{name, i + 1}, a...)...)
		}
		switch {
		case line == "" || line[0] == '#':
		case line[0] != '<': // so "allow=<none>" is a value
			key, value := splitConfLine(line)
			if key == "" {
				return nil, fail("empty key in %q", line)
			}
			if _, ok := top.values[key]; !ok {
				top.keys = append(top.keys, key)
			}
			top.values[key] = value
		case len(line) < 2 || line[len(line)-1] != '>':
			return nil, fail("section tag %q does not end with '>'", line)
		default:
			inner, closing := strings.CutPrefix(line[1:len(line)-1], "/")
			sec := trimConf(inner)
			bad := strings.IndexFunc(sec, func(r rune) bool {
				return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`/<>\`, r)
			})
			switch s := top.sub(sec); {
			case sec == "":
				return nil, fail("empty section name in %q", line)
			case bad >= 0: // a name that could not be written in a path
				return nil, fail("section name %q may not contain %q in %q", sec, []rune(sec[bad:])[0], line)
			case !closing:
				if s == nil {
					s = &confSection{name: sec, values: map[string]string{}}
					top.subs = append(top.subs, s)
				}
				s.line = i + 1
				stack = append(stack, s)
			case len(stack) == 1:
				return nil, fail("</%s> closes no open section", sec)
			case top.name != sec:
				return nil, fail("</%s> does not match <%s> opened at line %d", sec, top.name, top.line)
			default:
				stack = stack[:len(stack)-1]
			}
		}
	}
	if top := stack[len(stack)-1]; len(stack) > 1 {
		return nil, fmt.Errorf("%s:%d: <%s> is never closed", name, top.line, top.name)
	}
	return c, nil
}

// trimConf trims white space and byte order marks, which editors leave at
// the start of a file and concatenation at the start of any line.
func trimConf(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '\ufeff' })
}

// splitConfLine splits a trimmed line at its first unescaped '=', then
// trims and unescapes both halves.
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

var unescapeConf = strings.NewReplacer(`\=`, "=", `\\`, `\`, `\n`, "\n", `\r`, "\r", `\t`, "\t").Replace

// LoadConf reads and parses the config file at path.
func LoadConf(path string) (*Conf, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConf(path, data)
}

// section returns the section at a path such as "/a/b" ("/" is the root), nil if absent.
func (c *Conf) section(path string) *confSection {
	if c == nil {
		return nil
	}
	s := &c.root
	for n := range strings.SplitSeq(path, "/") {
		if s != nil && n != "" {
			s = s.sub(n)
		}
	}
	return s
}

// Lookup returns the value at a path such as "/a/b<key>" and whether the key is present.
func (c *Conf) Lookup(path string) (string, bool) {
	sec, key, ok := strings.Cut(path, "<")
	if s := c.section(sec); ok && s != nil && strings.HasSuffix(key, ">") {
		v, ok := s.values[key[:len(key)-1]]
		return v, ok
	}
	return "", false
}

// Get returns the value at a path, or "" if it is absent.
func (c *Conf) Get(path string) string { v, _ := c.Lookup(path); return v }

// Sections returns the names of a section's child sections in file order; nil if it is absent.
func (c *Conf) Sections(path string) []string {
	s := c.section(path)
	if s == nil {
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
	if s := c.section(path); s != nil {
		return slices.Clone(s.keys)
	}
	return nil
}

// ConfReader reads typed values from C and keeps the first error in Err, which names the key
// path and the value. An absent or empty key gives the default.
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

func (r *ConfReader) Str(path, def string) string { return cmp.Or(r.C.Get(path), def) }

// read parses the value at path; a bad one is recorded and gives def.
func read[T any](r *ConfReader, path string, def T, want string, parse func(string) (T, bool)) T {
	if v := r.Str(path, ""); v != "" {
		if n, ok := parse(v); ok {
			return n
		}
		r.Fail(path, v, want)
	}
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
	if n := r.Size(path, int64(def)); n <= math.MaxInt32 {
		return int(n)
	}
	r.Fail(path, r.C.Get(path), "a size below 2G")
	return def
}

// Proxy reads a proxy string, checked with ParseProxy.
func (r *ConfReader) Proxy(path, def string) string {
	_, v := parsed(r, path, def, ParseProxy)
	return v
}

// parsed reads a value, "" if unset, and what parse makes of it.
func parsed[T any](r *ConfReader, path, def string, parse func(string) (T, error)) (t T, v string) {
	if v = r.Str(path, def); v != "" {
		var err error
		t, err = parse(v)
		r.check(path, err)
	}
	return t, v
}

// List reads a comma-separated value, dropping empty items.
func (r *ConfReader) List(path string) []string {
	var out []string
	for s := range strings.SplitSeq(r.Str(path, ""), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
