package tars

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// defaultTimeout is an endpoint's timeout when its string has no -t option.
const defaultTimeout = 3000 * time.Millisecond

// Endpoint is one address in Tars form; host "*" means all interfaces, and
// Timeout is also the idle timeout of connections made or accepted on it:
//
//	tcp -h HOST [-p PORT] [-t TIMEOUT_MS] [-g GRID] [-q QOS] [-w WEIGHT] [-v WEIGHTTYPE] [-e AUTHTYPE]
type Endpoint struct {
	Proto                                   string // "tcp", "udp" or "ssl"
	Host                                    string
	Port                                    int
	Timeout                                 time.Duration // whole milliseconds
	Grid, Qos, Weight, WeightType, AuthType int           // 0 or a registry's -1: unset
}

// ParseEndpoint parses an endpoint string. An option's value is the next
// token unless it starts with "-"; unknown options are ignored, as in C++.
func ParseEndpoint(s string) (Endpoint, error) {
	bad := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("tars: endpoint %q: %s", s, fmt.Sprintf(format, args...))
	}
	toks := strings.Fields(s)
	if len(toks) == 0 {
		return bad("empty")
	}
	e, timeout := Endpoint{Proto: toks[0]}, int(defaultTimeout.Milliseconds())
	if !slices.Contains(endpointProtos[:], e.Proto) {
		return bad("unknown protocol %q (want tcp, udp or ssl)", e.Proto)
	}
	nums := [...]*int{&e.Port, &timeout, &e.Grid, &e.Qos, &e.Weight, &e.WeightType, &e.AuthType}
	for i := 1; i < len(toks); i++ {
		opt, val := toks[i], ""
		if i+1 < len(toks) && !strings.HasPrefix(toks[i+1], "-") {
			val, i = toks[i+1], i+1
		}
		n, err := strconv.Atoi(val)
		num := slices.Index(endpointOptions[:], opt)
		switch {
		case !strings.HasPrefix(opt, "-"):
			return bad("unexpected %q (want an option such as -h, -p, -t)", opt)
		case opt == "-h" && val == "":
			return bad("-h needs a host")
		case opt == "-h":
			if e.Host, err = parseHost(val); err != nil {
				return bad("%v", err)
			}
		case num < 0: // an unknown option (and its value, if any)
		case val == "":
			return bad("%s needs a value", opt)
		case err != nil || n < 0 || n > math.MaxInt32: // the int32 fields of EndpointF
			return bad("bad %s %q", optionNames[num], val)
		case opt == "-p" && n > 65535:
			return bad("bad port %q (out of range)", val)
		default:
			*nums[num] = n
		}
	}
	if e.Host == "" {
		return bad("no host (-h)")
	}
	e.Timeout = time.Duration(timeout) * time.Millisecond
	return e, nil
}

// The protocols by EndpointF.istcp, and the numeric options in the order of String.
var (
	endpointProtos  = [...]string{"udp", "tcp", "ssl"}
	endpointOptions = [...]string{"-p", "-t", "-g", "-q", "-w", "-v", "-e"}
	optionNames     = [...]string{"port", "timeout", "grid", "qos", "weight", "weight type", "auth type"}
)

// parseHost checks a -h value. A ':' is only allowed as part of an IPv6
// address, which keeps ':' free to separate the endpoints of a proxy string.
func parseHost(h string) (string, error) {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if h = h[1 : len(h)-1]; !strings.Contains(h, ":") {
			return "", fmt.Errorf("bad host %q (brackets are for IPv6 addresses)", "["+h+"]")
		}
	}
	const hostChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%"
	bad := strings.IndexFunc(h, func(r rune) bool { return !strings.ContainsRune(hostChars, r) })
	a, err := netip.ParseAddr(h)
	switch {
	case h == "*":
	case h == "":
		return "", errors.New("empty host")
	case bad >= 0:
		r, _ := utf8.DecodeRuneInString(h[bad:])
		return "", fmt.Errorf("bad host %q (unexpected %q)", h, r)
	case strings.Contains(h, ":") && (err != nil || !a.Is6() || strings.Contains(a.Zone(), ":")):
		return "", fmt.Errorf("bad host %q (not an IPv6 address)", h)
	case !strings.Contains(h, ":") && strings.Contains(h, "%"):
		return "", fmt.Errorf("bad host %q (a zone needs an IPv6 address)", h)
	}
	return h, nil
}

// String formats e so that ParseEndpoint returns it again, leaving out the
// options after -t that are 0 or a registry's -1 for "unset".
func (e Endpoint) String() string {
	s := fmt.Sprintf("%s -h %s -p %d -t %d", e.Proto, e.Host, e.Port, e.Timeout.Milliseconds())
	for i, v := range [...]int{e.Grid, e.Qos, e.Weight, e.WeightType, e.AuthType} {
		if v > 0 {
			s += fmt.Sprintf(" %s %d", endpointOptions[i+2], v)
		}
	}
	return s
}

// Addr returns "host:port" for net.Listen and net.Dial, with IPv6 hosts in
// brackets and "*" as the empty host (all interfaces).
func (e Endpoint) Addr() string {
	if e.Host == "*" {
		e.Host = ""
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// Dialable returns e with a wildcard host ("*", "", 0.0.0.0 or ::) replaced
// by localIP, or 127.0.0.1 when localIP is empty.
func (e Endpoint) Dialable(localIP string) Endpoint {
	if ip, err := netip.ParseAddr(e.Host); e.Host == "*" || e.Host == "" || err == nil && ip.IsUnspecified() {
		e.Host = cmp.Or(localIP, "127.0.0.1")
	}
	return e
}

// Proxy is a servant name with the endpoints to reach it, or none to resolve
// it through the registry:
//
//	App.Server.Obj@tcp -h 10.0.0.1 -p 10015:tcp -h 10.0.0.2 -p 10015
type Proxy struct {
	Name      string
	Endpoints []Endpoint
}

// ParseProxy parses a proxy string. The name ends at the first '@'; a ':'
// separates endpoints only before a protocol word, so IPv6 hosts need no quoting.
func ParseProxy(s string) (Proxy, error) {
	name, rest, hasAt := strings.Cut(s, "@")
	switch name = strings.TrimSpace(name); {
	case name == "":
		return Proxy{}, fmt.Errorf("tars: proxy %q: no servant name", s)
	case strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return Proxy{}, fmt.Errorf("tars: proxy %q: bad servant name %q", s, name)
	case !hasAt:
		return Proxy{Name: name}, nil
	case strings.TrimSpace(rest) == "":
		return Proxy{}, fmt.Errorf("tars: proxy %q: no endpoints after '@'", s)
	}
	var parts []string // cut at each ':' followed by a protocol word; others are within an IPv6 host
	for i, part := range strings.Split(rest, ":") {
		if f := strings.Fields(part); i > 0 && (len(f) == 0 || !slices.Contains(endpointProtos[:], f[0])) {
			parts[len(parts)-1] += ":" + part
		} else {
			parts = append(parts, part)
		}
	}
	p := Proxy{Name: name}
	for i, part := range parts {
		e, err := ParseEndpoint(part)
		if err != nil {
			return Proxy{}, fmt.Errorf("tars: proxy %q: endpoint %d: %w", s, i+1, err)
		}
		p.Endpoints = append(p.Endpoints, e)
	}
	return p, nil
}
