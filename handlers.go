package main

import (
	"bytes"
	"cmp"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

//go:embed clients
var clientFiles embed.FS

// handler is the chat server behind one HTTP handler: the WebSocket endpoint, the pages, and the
// HTTP triggers. It reads the settings in force at each request.
type handler struct {
	hub     *Hub
	live    *live
	cluster *Cluster // for the cluster view in /Index/stats; nil: none
	log     *slog.Logger

	mu    sync.Mutex     // guards conns
	conns map[string]int // WebSocket connections per client address
}

// newHandler returns the server's HTTP handler; metrics is served at /metrics.
func newHandler(hub *Hub, l *live, cl *Cluster, metrics http.Handler, log *slog.Logger) http.Handler {
	h := &handler{hub: hub, live: l, cluster: cl, log: cmp.Or(log, slog.Default()), conns: make(map[string]int)}
	pages, _ := fs.Sub(clientFiles, "clients")
	files := http.FileServerFS(pages)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			h.upgrade(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
	// The room pages are one page with the room filled in; the page alone is none.
	chat, _ := clientFiles.ReadFile("clients/chat.html")
	mux.Handle("/chat.html", http.NotFoundHandler())
	for _, n := range []string{"1", "2"} {
		page := bytes.ReplaceAll(chat, []byte("{{room}}"), []byte("room"+n))
		mux.HandleFunc("/client"+n+".html", func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "chat.html", time.Time{}, bytes.NewReader(page))
		})
	}
	mux.HandleFunc("/Index/pushByRoom", h.push)
	mux.HandleFunc("/Index/pushAll", h.push)
	mux.HandleFunc("/Index/index", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "index success!!") })
	mux.HandleFunc("/Index/stats", h.stats)
	mux.Handle("/metrics", metrics)
	mux.HandleFunc("/monitor/monitor", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"code":0}`)
	})
	// 421 to a Host not served: a page elsewhere can point its own name at this address (DNS
	// rebinding); its requests then carry that name, which Settings.Hosts does not list.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.hostAllowed(r) {
			h.log.Warn("request refused: host not served", "host", r.Host, "remote", r.RemoteAddr)
			http.Error(w, fmt.Sprintf("host %q is not served here", tars.Clip(r.Host)), http.StatusMisdirectedRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// upgrade is the gate to a WebSocket: the origin and the connections per client address are checked
// here rather than in the handshake, which answers 403 without saying why; the connection counts
// until it ends. Clients that send no Origin are not browsers.
func (h *handler) upgrade(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" && !h.originAllowed(origin, r) {
		h.log.Warn("websocket origin refused", "origin", origin, "host", r.Host)
		http.Error(w, fmt.Sprintf("origin %q not allowed", tars.Clip(origin)), http.StatusForbidden)
		return
	}
	// The peer of the TCP connection: forwarding headers are not trusted, so behind a reverse proxy
	// all clients share the proxy's address; keep the limit off there.
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	max := h.live.get().MaxConnsPerIP
	h.mu.Lock()
	ok := max <= 0 || h.conns[ip] < max
	if ok {
		h.conns[ip]++
	}
	h.mu.Unlock()
	if !ok {
		h.log.Warn("websocket refused: too many connections", "ip", ip, "max", max)
		http.Error(w, fmt.Sprintf("too many connections from %s (at most %d)", ip, max), http.StatusTooManyRequests)
		return
	}
	serveConn(h.hub, w, r, func() {
		h.mu.Lock()
		if h.conns[ip]--; h.conns[ip] <= 0 {
			delete(h.conns, ip)
		}
		h.mu.Unlock()
	})
}

// hostAllowed reports whether r's Host is one of Settings.Hosts ("*" allows any). With none set, a
// request that came in on a loopback address may only name a loopback host (localhost, 127.0.0.1,
// [::1], any port), and one that came in on another address may name any.
func (h *handler) hostAllowed(r *http.Request) bool {
	host := r.Host
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if hosts := h.live.get().Hosts; len(hosts) > 0 {
		return anyOf(hosts, host)
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if ap, err := netip.ParseAddrPort(fmt.Sprint(local)); err != nil || !ap.Addr().IsLoopback() {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return strings.EqualFold(host, "localhost") || err == nil && ip.IsLoopback()
}

// anyOf reports whether list holds "*" or v, whatever the case.
func anyOf(list []string, v string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return s == "*" || strings.EqualFold(s, v) })
}

// originAllowed reports whether a browser page from origin may use the server: a page it served
// itself (same host as the request, which newHandler has let through), or one of Settings.Origins
// ("*" allows any).
func (h *handler) originAllowed(origin string, r *http.Request) bool {
	return strings.EqualFold(origin, "http://"+r.Host) || strings.EqualFold(origin, "https://"+r.Host) ||
		anyOf(h.live.get().Origins, origin)
}

// trigger checks an HTTP trigger and returns the settings in force, or answers it and returns nil:
// a browser request for a page the server does not allow (403, whatever the method: a form or an
// <img> on any site must not push), a body over the limit (400), a missing (401) or wrong (403)
// push token. A request with an Origin is judged by it; one without, by Sec-Fetch-Site. Clients
// that send neither (curl, backends) go through.
func (h *handler) trigger(w http.ResponseWriter, r *http.Request, sameSite bool) *Settings {
	s := h.live.get()
	origin, site := r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")
	if sameSite && (origin != "" && !h.originAllowed(origin, r) ||
		origin == "" && site != "" && site != "same-origin" && site != "none") {
		h.log.Warn("trigger refused: cross-site request", "path", r.URL.Path, "origin", origin, "site", site, "remote", r.RemoteAddr)
		http.Error(w, "cross-site request refused: the page's origin is not allowed (setting origins)", http.StatusForbidden)
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxHTTPBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return nil
	}
	switch got := cmp.Or(r.Header.Get("X-Push-Token"), r.FormValue("token")); {
	case checkPushToken(s, got):
		return s
	case got == "":
		w.Header().Set("WWW-Authenticate", `Push-Token realm="push"`)
		http.Error(w, "push token required (header X-Push-Token or parameter token)", http.StatusUnauthorized)
	default:
		h.log.Warn("push refused: wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
		http.Error(w, "wrong push token", http.StatusForbidden)
	}
	return nil
}

// checkPushToken reports whether got may push under s: always when no push token is configured,
// else when got is the token.
func checkPushToken(s *Settings, got string) bool {
	return s.PushToken == "" || sameToken(s.PushToken, got)
}

// push serves pushByRoom (roomNum, message) and pushAll (message), whose parameters come from the
// query, a POST form or a body: a missing one, or a room or message that breaks a limit, is a 400.
func (h *handler) push(w http.ResponseWriter, r *http.Request) {
	s := h.trigger(w, r, true)
	if s == nil {
		return
	}
	all, room, msg := r.URL.Path == "/Index/pushAll", r.FormValue("roomNum"), r.FormValue("message")
	var err error
	switch {
	case !all && room == "":
		err = errors.New("missing parameter roomNum")
	case msg == "":
		err = errors.New("missing parameter message")
	case !all:
		if err = checkRoom(room, s); err != nil {
			err = fmt.Errorf("roomNum: %w", err)
		}
	}
	if err = cmp.Or(err, checkMessage(&msg, s)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if all {
		h.hub.PushAll(msg, fromHTTP)
		io.WriteString(w, "pushBy all success")
		return
	}
	if _, err := h.hub.PushRoom(room, msg, fromHTTP); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	io.WriteString(w, "pushBy room success")
}

// stats shows every room name, protected ones too: with a push token set, only those who may push
// may look.
func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	if h.trigger(w, r, false) == nil {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	st := struct {
		hubCounts
		Cluster *clusterView `json:"cluster,omitempty"`
	}{hubCounts: h.hub.Counts()}
	if h.cluster != nil {
		cs := h.cluster.View()
		st.Cluster = &cs
	}
	json.NewEncoder(w).Encode(st)
}
