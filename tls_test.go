package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCert makes a self-signed certificate for 127.0.0.1 and localhost, valid from an hour ago
// until notAfter, and returns it and its key in PEM, and a pool that trusts it.
func testCert(t *testing.T, notAfter time.Time) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "websocketserver test"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), pool
}

// startTLSProc starts the server with an ssl objAdapter, its certificate given by paths relative
// to the working directory; it returns the pool that trusts the certificate.
func startTLSProc(t *testing.T, websocket string) (*proc, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, pool := testCert(t, time.Now().Add(time.Hour))
	p := startProc(t, procOpts{ssl: true, files: map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM},
		websocket: "tls-cert=cert.pem\ntls-key=key.pem\n" + websocket})
	return p, pool
}

// wss opens a WebSocket over TLS to p, with origin if not empty.
func (p *proc) wss(t *testing.T, pool *x509.CertPool, origin string) (*rawConn, *http.Response) {
	t.Helper()
	// As a browser, it offers HTTP/2, where no WebSocket upgrade is possible.
	c, err := tls.Dial("tcp", p.http, &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if proto := c.ConnectionState().NegotiatedProtocol; proto != "http/1.1" {
		t.Fatalf("ALPN chose %q, want http/1.1", proto)
	}
	return rawHandshake(t, c, origin)
}

func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestWSS: over an ssl endpoint browsers chat and call, pages on the server's own https origin
// push with triggers, and other sites are refused as over plain HTTP.
func TestWSS(t *testing.T) {
	t.Parallel()
	p, pool := startTLSProc(t, "call-allow="+testHelloObj+":hello")
	waitFor(t, "the banner", func() bool { return p.stdout.String() != "" })
	if want := "open https://" + p.http + "/client1.html and /client2.html\n"; p.stdout.String() != want {
		t.Errorf("stdout %q, want %q", p.stdout.String(), want)
	}
	self := "https://" + p.http
	a, resp := p.wss(t, pool, self)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("wss handshake from the server's own https origin: %s", resp.Status)
	}
	b, _ := p.wss(t, pool, "")
	a.subscribe("room1")
	b.send(`sendByRoom|{"roomNum":"room1","message":"over tls"}`)
	if got := a.text(); got != "over tls" {
		t.Fatalf("room1 member got %q", got)
	}
	b.send(`call|{"id":7,"servant":"` + testHelloObj + `","func":"hello","args":{"no":1,"name":"ann"}}`)
	if got := answer(t, b); got["kind"] != "result" || got["ret"] != "hello ann, no 1, from TestApp.WebsocketServer" {
		t.Fatalf("call over wss answered %v", got)
	}
	if _, resp := p.wss(t, pool, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("wss handshake from another site: %s, want 403", resp.Status)
	}

	hc := httpsClient(pool)
	defer hc.CloseIdleConnections()
	trigger := func(origin, site string) (int, string) {
		req, _ := http.NewRequest("POST", self+"/Index/pushByRoom",
			strings.NewReader(url.Values{"roomNum": {"room1"}, "message": {"pushed " + origin + site}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return readResponse(t, resp)
	}
	for _, c := range []struct {
		origin, site string
		code         int
	}{{"", "", 200}, {self, "same-origin", 200}, {"", "same-origin", 200},
		{"https://evil.example", "cross-site", 403}, {"", "cross-site", 403}} {
		code, body := trigger(c.origin, c.site)
		t.Logf("trigger origin %q site %q: %d %q", c.origin, c.site, code, body)
		if code != c.code {
			t.Fatalf("trigger origin %q site %q: %d %q, want %d", c.origin, c.site, code, body, c.code)
		}
		if code == 200 {
			if got := a.text(); got != "pushed "+c.origin+c.site {
				t.Fatalf("after an https trigger the member got %q", got)
			}
		}
	}
	a.send("ping")
	if got := a.text(); got != "pong" {
		t.Fatalf("ping after the refused triggers = %q", got)
	}
}

// closedWithin reports whether the server closes c within d, whatever it sends before.
func closedWithin(c net.Conn, d time.Duration) (string, bool) {
	c.SetReadDeadline(time.Now().Add(d))
	got, err := io.ReadAll(c)
	var ne net.Error
	return string(got), !(errors.As(err, &ne) && ne.Timeout())
}

// TestHostileTLSHandshakes: plain HTTP, bytes that are not TLS, an old TLS version, a handshake
// that stops halfway and a connection that sends nothing are each closed, within
// http-read-timeout at most, and free their slot; a wss member goes on chatting.
func TestHostileTLSHandshakes(t *testing.T) {
	t.Parallel()
	p, pool := startTLSProc(t, "http-read-timeout=1000")
	a, _ := p.wss(t, pool, "")
	a.subscribe("room1")
	dial := func(first string) net.Conn {
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, first)
		return c
	}
	for _, c := range []struct{ name, send, want string }{
		{"plain HTTP", "GET /Index/index HTTP/1.1\r\nHost: " + p.http + "\r\n\r\n", "400 Bad Request"},
		{"not TLS", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", ""},
		{"half a ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ""},
		{"nothing", "", ""},
	} {
		start := time.Now()
		got, closed := closedWithin(dial(c.send), 5*time.Second)
		t.Logf("%s: closed %v after %v, answered %q", c.name, closed, time.Since(start).Round(time.Millisecond), got)
		if !closed || !strings.Contains(got, c.want) {
			t.Errorf("%s: closed %v, answered %q; want closed with %q", c.name, closed, got, c.want)
		}
	}
	old, err := tls.Dial("tcp", p.http, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	t.Logf("TLS 1.1 client: %v", err)
	if err == nil {
		old.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	untrusting, err := tls.Dial("tcp", p.http, &tls.Config{})
	t.Logf("client that does not trust the certificate: %v", err)
	if err == nil {
		untrusting.Close()
		t.Error("a client without the test's root trusted the certificate")
	}

	b, _ := p.wss(t, pool, "")
	b.send(`sendByRoom|{"roomNum":"room1","message":"still here"}`)
	if got := a.text(); got != "still here" {
		t.Fatalf("member got %q after the bad handshakes", got)
	}
	waitFor(t, "the slots of the bad connections to be freed", func() bool {
		return p.conns(t, "TestApp.WebsocketServer.objAdapter") == 2
	})
}

// TestTLSSettings: a missing or bad certificate or key, or an ssl endpoint the server cannot
// serve, stops the server at start with an error naming the setting; relative paths are from the
// working directory.
func TestTLSSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPEM, keyPEM, _ := testCert(t, time.Now().Add(time.Hour))
	_, otherKey, _ := testCert(t, time.Now().Add(time.Hour))
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write("cert.pem", certPEM)
	write("key.pem", keyPEM)
	write("other-key.pem", otherKey)
	const ws = "/tars/application/websocket"
	// The configs are in conf/, the files in the working directory.
	conf := func(name, proto, protocol, websocket string) string {
		return write("conf/"+name+".conf", []byte(`<tars>
<application>
<server>
app=A
server=B
<A.B.objAdapter>
endpoint=`+proto+` -h 127.0.0.1 -p 0
protocol=`+protocol+`
servant=A.B.obj
</A.B.objAdapter>
</server>
<websocket>
`+websocket+`
</websocket>
</application>
</tars>
`))
	}
	for _, c := range []struct {
		name, proto, protocol, websocket string
		want                             []string
	}{
		{"none", "ssl", "not_tars", "", []string{ws + "<tls-cert> and " + ws + "<tls-key>: required by adapter A.B.objAdapter, whose endpoint is ssl"}},
		{"no key", "ssl", "not_tars", "tls-cert=cert.pem", []string{ws + "<tls-key>: required with " + ws + "<tls-cert>"}},
		{"no cert", "tcp", "not_tars", "tls-key=key.pem", []string{ws + "<tls-cert>: required with " + ws + "<tls-key>"}},
		{"missing cert", "ssl", "not_tars", "tls-cert=gone.pem\ntls-key=key.pem", []string{ws + "<tls-cert>: open gone.pem: no such file"}},
		{"missing key", "ssl", "not_tars", "tls-cert=cert.pem\ntls-key=conf/key.pem", []string{ws + "<tls-key>: open conf/key.pem: no such file"}},
		{"key is a cert", "ssl", "not_tars", "tls-cert=cert.pem\ntls-key=cert.pem", []string{ws + "<tls-cert> (cert.pem) and " + ws + "<tls-key> (cert.pem)", "rather than a key"}},
		{"cert is a key", "ssl", "not_tars", "tls-cert=key.pem\ntls-key=key.pem", []string{ws + "<tls-cert> (key.pem)", "certificate"}},
		{"another key", "ssl", "not_tars", "tls-cert=cert.pem\ntls-key=other-key.pem", []string{ws + "<tls-key> (other-key.pem)", "private key does not match public key"}},
		{"ssl on tars", "ssl", "tars", "tls-cert=cert.pem\ntls-key=key.pem", []string{"adapter A.B.objAdapter: endpoint ssl -h 127.0.0.1", "ssl is served by not_tars adapters only"}},
	} {
		code, stderr := runBin(t, dir, "--config="+conf(strings.ReplaceAll(c.name, " ", "-"), c.proto, c.protocol, c.websocket))
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		t.Logf("%s: exit %d: %s", c.name, code, lines[len(lines)-1])
		if code != 1 {
			t.Errorf("%s: exit status %d, want 1", c.name, code)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q does not contain %q", c.name, stderr, w)
			}
		}
	}
}

// TestTLSWarnings: an expired certificate, or one no ssl endpoint serves, is logged but does not
// stop the server: refusing to start would take the whole service down.
func TestTLSWarnings(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM, _ := testCert(t, time.Now().Add(-time.Minute))
	p := startProc(t, procOpts{files: map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM},
		websocket: "tls-cert=cert.pem\ntls-key=key.pem"})
	for _, w := range []string{"tls-cert has expired: browsers will refuse it", "no not_tars adapter has an ssl endpoint"} {
		waitFor(t, "the warning "+w, func() bool { return strings.Contains(p.log(), w) })
	}
}
