package main

import (
	"bufio"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/websocket"
)

//go:embed clients
var clientFiles embed.FS

// Server is the whole chat server behind one HTTP handler: the WebSocket
// endpoint, the pages, and the HTTP triggers.
type Server struct {
	settings Settings
	log      *slog.Logger
	hub      *Hub
	handler  http.Handler
	conns    connLimiter // WebSocket connections per client address
	metrics  *Metrics    // served at /metrics
	cluster  *Cluster    // for the cluster view in /Index/stats; nil: none
}

// newServer builds the server. With the file store, membership goes to
// dataDir/rooms and history to dataDir/history.
func newServer(s Settings, dataDir string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	var store FdStore
	historyDir := ""
	switch s.Store {
	case "file", "":
		fs, err := NewFileStore(filepath.Join(dataDir, "rooms"), log)
		if err != nil {
			return nil, err
		}
		store = fs
		historyDir = filepath.Join(dataDir, "history")
	case "memory":
		store = &MemStore{}
	default:
		return nil, fmt.Errorf("unknown store %q (want file or memory)", s.Store)
	}
	hub, err := NewHub(s, store, historyDir, log)
	if err != nil {
		return nil, err
	}
	srv := &Server{settings: s, log: log, hub: hub, conns: connLimiter{max: s.MaxConnsPerIP}, metrics: &Metrics{hub: hub}}

	pages, err := fs.Sub(clientFiles, "clients")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(pages)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && isUpgrade(r) {
			// Refused here rather than in the handshake, which answers 403
			// without saying why.
			if err := srv.checkOrigin(&websocket.Config{}, r); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			// Over the limit the handshake is refused before the upgrade, so
			// the client sees why; the connection counts until it ends.
			ip := clientIP(r)
			if !srv.conns.acquire(ip) {
				srv.log.Warn("websocket refused: too many connections", "ip", ip, "max", s.MaxConnsPerIP)
				http.Error(w, fmt.Sprintf("too many connections from %s (at most %d)", ip, s.MaxConnsPerIP), http.StatusTooManyRequests)
				return
			}
			defer srv.conns.release(ip)
			// The hub writes frames to the hijacked connection itself.
			var conn net.Conn
			raw := &rawFrames{}
			r = r.WithContext(context.WithValue(r.Context(), rawFramesKey{}, raw))
			ws := websocket.Server{
				Handshake: srv.checkOrigin,
				Handler:   func(ws *websocket.Conn) { hub.Serve(ws, conn) },
			}
			ws.ServeHTTP(idleWriter{w, s.IdleTimeout, &conn, raw}, r)
			return
		}
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("/Index/pushByRoom", srv.pushByRoom)
	mux.HandleFunc("/Index/pushAll", srv.pushAll)
	mux.HandleFunc("/Index/index", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "index success!!")
	})
	mux.HandleFunc("/Index/stats", srv.stats)
	mux.Handle("/metrics", srv.metrics)
	mux.HandleFunc("/monitor/monitor", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"code":0}`)
	})
	srv.handler = srv.checkHost(mux)
	return srv, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics returns what /metrics reports, for the App to add its own to.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Hub returns the rooms and connections, for other ways in (Tars RPC, peers).
func (s *Server) Hub() *Hub { return s.hub }

// Shutdown closes every WebSocket after flushing queued frames (until ctx
// ends) and saves the history. The HTTP server is shut down by its owner.
func (s *Server) Shutdown(ctx context.Context) error { return s.hub.Shutdown(ctx) }

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// checkHost answers 421 to a request for a Host the server does not serve.
// A page elsewhere can point its own name at this address (DNS rebinding);
// its requests then carry that name, which Settings.Hosts does not list.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r) {
			s.log.Warn("request refused: host not served", "host", r.Host, "remote", r.RemoteAddr)
			http.Error(w, fmt.Sprintf("host %q is not served here", clip(r.Host)), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether r's Host is one of Settings.Hosts ("*" allows
// any). With none set, a request that came in on a loopback address may
// only name a loopback host (localhost, 127.0.0.1, [::1], any port), and
// one that came in on another address may name any.
func (s *Server) hostAllowed(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if len(s.settings.Hosts) > 0 {
		return slices.Contains(s.settings.Hosts, "*") ||
			slices.ContainsFunc(s.settings.Hosts, func(h string) bool { return strings.EqualFold(h, host) })
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if ap, err := netip.ParseAddrPort(fmt.Sprint(local)); err != nil || !ap.Addr().IsLoopback() {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return strings.EqualFold(host, "localhost") || err == nil && ip.IsLoopback()
}

// originAllowed reports whether a browser page from origin may use the
// server: a page it served itself (same host as the request, which
// checkHost has let through), or one of Settings.Origins ("*" allows any).
func (s *Server) originAllowed(origin string, r *http.Request) bool {
	if strings.EqualFold(origin, "http://"+r.Host) || strings.EqualFold(origin, "https://"+r.Host) {
		return true
	}
	return slices.Contains(s.settings.Origins, "*") ||
		slices.ContainsFunc(s.settings.Origins, func(o string) bool { return strings.EqualFold(o, origin) })
}

// checkOrigin accepts clients that send no Origin (not browsers) and
// origins that originAllowed accepts.
func (s *Server) checkOrigin(cfg *websocket.Config, r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if !s.originAllowed(origin, r) {
		s.log.Warn("websocket origin refused", "origin", origin, "host", r.Host)
		return fmt.Errorf("origin %q not allowed", clip(origin))
	}
	cfg.Origin, _ = url.Parse(origin)
	return nil
}

// sameSite answers 403 to a trigger that a browser sends for a page the
// server does not allow, whatever the method: a form or an <img> on any
// site must not push. A request with an Origin is judged by it; one
// without, by Sec-Fetch-Site. Clients that send neither (curl, backends)
// go through.
func (s *Server) sameSite(w http.ResponseWriter, r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		if s.originAllowed(origin, r) {
			return true
		}
	} else if site := r.Header.Get("Sec-Fetch-Site"); site == "" || site == "same-origin" || site == "none" {
		return true
	}
	s.log.Warn("trigger refused: cross-site request", "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr)
	http.Error(w, "cross-site request refused: the page's origin is not allowed (setting origins)", http.StatusForbidden)
	return false
}

// param reads a trigger parameter from the query, a POST form or a body.
func (s *Server) param(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	v := r.FormValue(name)
	if v == "" {
		http.Error(w, "missing parameter "+name, http.StatusBadRequest)
		return "", false
	}
	return v, true
}

// limitBody caps a trigger's body before FormValue reads it.
func (s *Server) limitBody(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, s.settings.MaxHTTPBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (s *Server) checkTriggerMessage(w http.ResponseWriter, msg string) bool {
	if err := checkMessage(&msg, s.settings); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (s *Server) pushByRoom(w http.ResponseWriter, r *http.Request) {
	if !s.sameSite(w, r) || !s.limitBody(w, r) || !s.authorizePush(w, r) {
		return
	}
	room, ok := s.param(w, r, "roomNum")
	if !ok {
		return
	}
	msg, ok := s.param(w, r, "message")
	if !ok {
		return
	}
	if err := checkRoom(room, s.settings); err != nil {
		http.Error(w, "roomNum: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !s.checkTriggerMessage(w, msg) {
		return
	}
	s.hub.PushRoom(room, msg, fromHTTP)
	io.WriteString(w, "pushBy room success")
}

func (s *Server) pushAll(w http.ResponseWriter, r *http.Request) {
	if !s.sameSite(w, r) || !s.limitBody(w, r) || !s.authorizePush(w, r) {
		return
	}
	msg, ok := s.param(w, r, "message")
	if !ok || !s.checkTriggerMessage(w, msg) {
		return
	}
	s.hub.PushAll(msg, fromHTTP)
	io.WriteString(w, "pushBy all success")
}

// stats shows every room name, protected ones too: with a push token set,
// only those who may push may look.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	if !s.limitBody(w, r) || !s.authorizePush(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	st := struct {
		Stats
		Cluster *clusterView `json:"cluster,omitempty"`
	}{Stats: s.hub.Stats()}
	if s.cluster != nil {
		cs := s.cluster.View()
		st.Cluster = &cs
	}
	json.NewEncoder(w).Encode(st)
}

// idleWriter hands the WebSocket a connection whose read deadline moves on
// whenever bytes arrive, so pongs and other control frames count as traffic.
// The connection hijacked is also kept in *conn, and the reader x/net reads
// frames from in raw.
type idleWriter struct {
	http.ResponseWriter
	idle time.Duration
	conn *net.Conn
	raw  *rawFrames
}

func (w idleWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("websocket: %T cannot hijack the connection", w.ResponseWriter)
	}
	conn, rw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	*w.conn = conn
	// The deadline net/http set for reading the request is no WebSocket's.
	conn.SetReadDeadline(deadline(w.idle))
	// net/http's reader already buffers: this one only has to take
	// frame headers a byte at a time without a call each.
	r := bufio.NewReaderSize(&idleReader{r: rw.Reader, conn: conn, idle: w.idle}, idleReaderBuffer)
	w.raw.br = r
	return conn, bufio.NewReadWriter(r, rw.Writer), nil
}

// idleReaderBuffer is the size of the small buffer over net/http's reader.
const idleReaderBuffer = 128

type idleReader struct {
	r    io.Reader
	conn net.Conn
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.conn.SetReadDeadline(deadline(r.idle))
	}
	return n, err
}
