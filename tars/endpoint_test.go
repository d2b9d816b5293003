package tars

import (
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseEndpoint(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		in   string
		want Endpoint
	}{
		{"tcp -h 10.0.0.5 -p 18080 -t 60000", Endpoint{Proto: "tcp", Host: "10.0.0.5", Port: 18080, Timeout: 60000 * ms}},
		{"udp -h example.com", Endpoint{Proto: "udp", Host: "example.com", Timeout: 3000 * ms}},
		{"ssl -h * -p 443", Endpoint{Proto: "ssl", Host: "*", Port: 443, Timeout: 3000 * ms}},
		{"  tcp\t-h  a_b-c.d \t -p 1  ", Endpoint{Proto: "tcp", Host: "a_b-c.d", Port: 1, Timeout: 3000 * ms}},
		{"tcp -h h -p 1 -t 2 -g 3 -q 4 -w 5 -v 6 -e 7",
			Endpoint{Proto: "tcp", Host: "h", Port: 1, Timeout: 2 * ms, Grid: 3, Qos: 4, Weight: 5, WeightType: 6, AuthType: 7}},
		{"tcp -t 0 -h h", Endpoint{Proto: "tcp", Host: "h", Timeout: 0}},
		// Unknown options are skipped with their value, or alone.
		{"tcp -h h -x 9 -p 2 -y -z", Endpoint{Proto: "tcp", Host: "h", Port: 2, Timeout: 3000 * ms}},
		{"tcp -h h -timeout 5 -p 2", Endpoint{Proto: "tcp", Host: "h", Port: 2, Timeout: 3000 * ms}},
		// The last duplicate wins.
		{"tcp -h a -p 1 -h b -p 2", Endpoint{Proto: "tcp", Host: "b", Port: 2, Timeout: 3000 * ms}},
		{"tcp -h ::1 -p 80", Endpoint{Proto: "tcp", Host: "::1", Port: 80, Timeout: 3000 * ms}},
		{"tcp -h [fe80::1%eth0] -p 80", Endpoint{Proto: "tcp", Host: "fe80::1%eth0", Port: 80, Timeout: 3000 * ms}},
		{"tcp -h h -p +7", Endpoint{Proto: "tcp", Host: "h", Port: 7, Timeout: 3000 * ms}},
		{"tcp -h h -p 65535", Endpoint{Proto: "tcp", Host: "h", Port: 65535, Timeout: 3000 * ms}},
	}
	for _, tt := range tests {
		got, err := ParseEndpoint(tt.in)
		if err != nil {
			t.Errorf("ParseEndpoint(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseEndpoint(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		again, err := ParseEndpoint(got.String())
		if err != nil || again != got {
			t.Errorf("ParseEndpoint(%q) = %+v, %v after String; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParseEndpointErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"tcp -h x -p abc", `tars: endpoint "tcp -h x -p abc": bad port "abc"`},
		{"", `tars: endpoint "": empty`},
		{"   ", "empty"},
		{"http -h x", `unknown protocol "http"`},
		{"TCP -h x", `unknown protocol "TCP"`},
		{"-h x -p 1", `unknown protocol "-h"`},
		{"tcp -p 1", "no host (-h)"},
		{"tcp -h", "-h needs a host"},
		{"tcp -h -p 1", "-h needs a host"},
		{"tcp -h x -p", "-p needs a value"},
		{"tcp -h x -p -t 5", "-p needs a value"},
		{"tcp -h x -t", "-t needs a value"},
		{"tcp -h x -p 65536", `bad port "65536" (out of range)`},
		{"tcp -h x -p 99999999999999999999", `bad port "99999999999999999999"`},
		{"tcp -h x -t 1.5", `bad timeout "1.5"`},
		{"tcp -h x -t 2147483648", `bad timeout "2147483648"`},
		{"tcp -h x -g y", `bad grid "y"`},
		{"tcp -h x -q y", `bad qos "y"`},
		{"tcp -h x -w y", `bad weight "y"`},
		{"tcp -h x -v y", `bad weight type "y"`},
		{"tcp -h x -e y", `bad auth type "y"`},
		{"tcp -h x 80", `unexpected "80"`},
		{"tcp -h a:b -p 1", `bad host "a:b" (not an IPv6 address)`},
		{"tcp -h 1.2.3.4:5", `bad host "1.2.3.4:5"`},
		{"tcp -h [a] -p 1", `bad host "[a]" (brackets are for IPv6 addresses)`},
		{"tcp -h [] -p 1", `bad host "[]"`},
		{"tcp -h a/b -p 1", `bad host "a/b" (unexpected '/')`},
		{"tcp -h a@b -p 1", `bad host "a@b"`},
		{"tcp -h x%1 -p 1", `bad host "x%1" (a zone needs an IPv6 address)`},
	}
	for _, tt := range tests {
		_, err := ParseEndpoint(tt.in)
		if err == nil {
			t.Errorf("ParseEndpoint(%q) succeeded, want error containing %q", tt.in, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseEndpoint(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		}
		if !strings.HasPrefix(err.Error(), "tars: endpoint ") {
			t.Errorf("ParseEndpoint(%q) error %q does not say where", tt.in, err)
		}
	}
}

func TestEndpointString(t *testing.T) {
	e := Endpoint{Proto: "tcp", Host: "10.0.0.5", Port: 18080, Timeout: time.Minute}
	if got, want := e.String(), "tcp -h 10.0.0.5 -p 18080 -t 60000"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	e.Grid, e.AuthType = 1, 2
	if got, want := e.String(), "tcp -h 10.0.0.5 -p 18080 -t 60000 -g 1 -e 2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestEndpointAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"tcp -h 127.0.0.1 -p 80", "127.0.0.1:80"},
		{"tcp -h * -p 80", ":80"},
		{"tcp -h ::1 -p 80", "[::1]:80"},
		{"tcp -h [::1] -p 80", "[::1]:80"},
		{"tcp -h localhost", "localhost:0"},
	}
	for _, tt := range tests {
		e, err := ParseEndpoint(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Addr(); got != tt.want {
			t.Errorf("ParseEndpoint(%q).Addr() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The address from Addr is one the net package can really listen on.
func TestEndpointAddrListens(t *testing.T) {
	for _, s := range []string{"tcp -h 127.0.0.1 -p 0", "tcp -h * -p 0", "tcp -h ::1 -p 0"} {
		e, err := ParseEndpoint(s)
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", e.Addr())
		if err != nil {
			if e.Host == "::1" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatalf("listen on %q from %q: %v", e.Addr(), s, err)
		}
		l.Close()
	}
}

func TestParseProxy(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		in   string
		want Proxy
	}{
		{"tars.tarsregistry.QueryObj", Proxy{Name: "tars.tarsregistry.QueryObj"}},
		{" tars.tarsconfig.ConfigObj ", Proxy{Name: "tars.tarsconfig.ConfigObj"}},
		{"tars.tarsnode.ServerObj@tcp -h 10.0.0.5 -p 19386 -t 60000", Proxy{Name: "tars.tarsnode.ServerObj",
			Endpoints: []Endpoint{{Proto: "tcp", Host: "10.0.0.5", Port: 19386, Timeout: 60000 * ms}}}},
		{"App.Server.Obj@tcp -h 127.0.0.1 -p 10015 -t 60000:tcp -h 127.0.0.2 -p 10015", Proxy{Name: "App.Server.Obj",
			Endpoints: []Endpoint{
				{Proto: "tcp", Host: "127.0.0.1", Port: 10015, Timeout: 60000 * ms},
				{Proto: "tcp", Host: "127.0.0.2", Port: 10015, Timeout: 3000 * ms},
			}}},
		{"A.B.C @ tcp -h a -p 1 : udp -h b -p 2 :ssl -h c", Proxy{Name: "A.B.C",
			Endpoints: []Endpoint{
				{Proto: "tcp", Host: "a", Port: 1, Timeout: 3000 * ms},
				{Proto: "udp", Host: "b", Port: 2, Timeout: 3000 * ms},
				{Proto: "ssl", Host: "c", Timeout: 3000 * ms},
			}}},
		// IPv6 hosts: ':' only separates endpoints before a protocol word.
		{"A.B.C@tcp -h ::1 -p 1:tcp -h fe80:: -p 2:tcp -p 3 -h ::", Proxy{Name: "A.B.C",
			Endpoints: []Endpoint{
				{Proto: "tcp", Host: "::1", Port: 1, Timeout: 3000 * ms},
				{Proto: "tcp", Host: "fe80::", Port: 2, Timeout: 3000 * ms},
				{Proto: "tcp", Host: "::", Port: 3, Timeout: 3000 * ms},
			}}},
	}
	for _, tt := range tests {
		got, err := ParseProxy(tt.in)
		if err != nil {
			t.Errorf("ParseProxy(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseProxy(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		again, err := ParseProxy(proxyString(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseProxy(%q) = %+v, %v; want %+v", proxyString(got), again, err, got)
		}
	}
}

func TestParseProxyErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `tars: proxy "": no servant name`},
		{"@tcp -h a", "no servant name"},
		{"A.B.C@", `tars: proxy "A.B.C@": no endpoints after '@'`},
		{"A.B.C@  ", "no endpoints after '@'"},
		{"A B@tcp -h a", `bad servant name "A B"`},
		{"A.B.C@tcp -h a -p x", `tars: proxy "A.B.C@tcp -h a -p x": endpoint 1: tars: endpoint "tcp -h a -p x": bad port "x"`},
		{"A.B.C@tcp -h a:tcp -p 1", `endpoint 2: tars: endpoint "tcp -p 1": no host`},
		{"A.B.C@tcp -h a -p 1:http -h b", `bad port "1:http"`},
		{"A.B.C@tcp -h a -p 1:tcp -p 2", `endpoint 2: tars: endpoint "tcp -p 2": no host (-h)`},
		{"A.B.C@tcp -h a -p 1:", `bad port "1:"`},
	}
	for _, tt := range tests {
		_, err := ParseProxy(tt.in)
		if err == nil {
			t.Errorf("ParseProxy(%q) succeeded, want error containing %q", tt.in, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseProxy(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{
		"tcp -h 10.0.0.5 -p 18080 -t 60000",
		"udp -h * -p 1 -g 2 -q 3 -w 4 -v 5 -e 6",
		"ssl -h [::1] -p 443 -x -y 1",
		"tcp -h fe80::1%eth0",
		"tcp -h x -p abc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEndpoint(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tars: endpoint ") {
				t.Fatalf("error %q does not say where", err)
			}
			return
		}
		again, err := ParseEndpoint(e.String())
		if err != nil {
			t.Fatalf("ParseEndpoint(%q) = %+v, but its String %q fails: %v", s, e, e.String(), err)
		}
		if again != e {
			t.Fatalf("ParseEndpoint(%q) = %+v, but its String %q gives %+v", s, e, e.String(), again)
		}
		// A proxy of one endpoint holds it unchanged.
		p, err := ParseProxy("A.B.C@" + e.String())
		if err != nil || len(p.Endpoints) != 1 || p.Endpoints[0] != e {
			t.Fatalf("proxy of %q = %+v, %v", e.String(), p, err)
		}
	})
}

// proxyString formats p as a proxy string: its name, then "@" and its
// endpoints separated by ':'.
func proxyString(p Proxy) string {
	s, sep := p.Name, "@"
	for _, e := range p.Endpoints {
		s, sep = s+sep+e.String(), ":"
	}
	return s
}

func FuzzParseProxy(f *testing.F) {
	for _, s := range []string{
		"tars.tarsregistry.QueryObj",
		"App.Server.Obj@tcp -h 127.0.0.1 -p 10015 -t 60000:tcp -h 127.0.0.2 -p 10015",
		"A.B.C@tcp -h ::1 -p 1:udp -h fe80:: -p 2:ssl -p 3 -h ::",
		"A.B.C@tcp -h a -p 1:",
		"A@B@tcp -h a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProxy(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tars: proxy ") {
				t.Fatalf("error %q does not say where", err)
			}
			return
		}
		again, err := ParseProxy(proxyString(p))
		if err != nil {
			t.Fatalf("ParseProxy(%q) = %+v, but its String %q fails: %v", s, p, proxyString(p), err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("ParseProxy(%q) = %+v, but its String %q gives %+v", s, p, proxyString(p), again)
		}
	})
}

func TestEndpointStringSkipsUnsetWeight(t *testing.T) {
	e := Endpoint{Proto: "tcp", Host: "127.0.0.1", Port: 10015, Timeout: defaultTimeout, Weight: -1}
	got, err := ParseEndpoint(e.String())
	if err != nil {
		t.Fatalf("ParseEndpoint(%q): %v", e.String(), err)
	}
	if got.Port != 10015 || got.Weight != 0 {
		t.Fatalf("ParseEndpoint(%q) = %+v, want port 10015 and no weight", e.String(), got)
	}
}

func TestEndpointDialable(t *testing.T) {
	for _, c := range []struct{ host, localIP, want string }{
		{"*", "", "127.0.0.1"},
		{"", "", "127.0.0.1"},
		{"0.0.0.0", "", "127.0.0.1"},
		{"::", "", "127.0.0.1"},
		{"*", "10.0.0.7", "10.0.0.7"},
		{"::", "10.0.0.7", "10.0.0.7"},
		{"10.0.0.5", "10.0.0.7", "10.0.0.5"},
		{"::1", "", "::1"},
		{"example.com", "10.0.0.7", "example.com"},
	} {
		e := Endpoint{Proto: "tcp", Host: c.host, Port: 80, Timeout: time.Second}
		got := e.Dialable(c.localIP)
		if want := (Endpoint{Proto: "tcp", Host: c.want, Port: 80, Timeout: time.Second}); got != want {
			t.Errorf("%q.Dialable(%q) = %+v, want host %q", c.host, c.localIP, got, c.want)
		}
	}
	// The result is an address a client really reaches a wildcard listener on.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := mustEndpoint(t, "tcp -h * -p "+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	c, err := net.DialTimeout("tcp", e.Dialable("").Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
