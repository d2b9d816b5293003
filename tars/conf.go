package tars

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
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
