package main

import (
	"cmp"
	_ "embed"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

//go:embed default.conf
var defaultConfData []byte

// DefaultConf returns the embedded default config, used without a Tars platform (go run .).
func DefaultConf() *tars.Conf {
	c, err := tars.ParseConf("default.conf", defaultConfData)
	if err != nil {
		panic("embedded " + err.Error()) // caught by the tests
	}
	return c
}

// websocketPath is the server's own section of the config.
const websocketPath = "/tars/application/websocket"

// Settings are the server's own knobs, keyed by conf tags. Start from DefaultSettings.
type Settings struct {
	Store         string        `conf:"store" want:"file|memory"`     // "file" (the default) or "memory"
	History       int           `conf:"history" want:"min0"`          // messages kept per room for history|ROOM
	HistoryDisk   int64         `conf:"history-disk"`                 // bound of the history log on disk (store=file)
	MaxMessage    int           `conf:"max-message" want:"size"`      // largest WebSocket message accepted, bytes
	QueueMessages int           `conf:"queue-messages"`               // per-connection outgoing queue, messages
	QueueBytes    int           `conf:"queue-bytes" want:"size"`      // per-connection outgoing queue, bytes
	MaxRooms      int           `conf:"max-rooms"`                    // rooms one connection may join
	MaxRoomName   int           `conf:"max-room-name"`                // longest room name, bytes
	Origins       []string      `conf:"origins"`                      // allowed browser origins besides the page's own; "*" allows any
	MaxConnsPerIP int           `conf:"max-conns-per-ip" want:"min0"` // 0: no limit (many users share an address behind NAT)
	CommandRate   float64       `conf:"command-rate"`                 // commands per second per connection (token bucket refill)
	CommandBurst  int           `conf:"command-burst"`                // token bucket size
	PingInterval  time.Duration `conf:"ping-interval"`                // protocol-level ping from the writer
	IdleTimeout   time.Duration `conf:"idle-timeout"`                 // read deadline, refreshed by any traffic
	WriteTimeout  time.Duration `conf:"write-timeout"`                // deadline for each write
	PushToken     string        `conf:"push-token"`                   // when set, HTTP triggers and PushObj require it
	RoomSecret    string        `conf:"room-secret"`                  // when set, subscribe needs a room token signed with it
	Hello         string        `conf:"hello" want:"proxy"`           // proxy string of the Hello servant that hello|NAME calls
	Peers         string        `conf:"peers" want:"proxy"`           // static cluster peers: PushObj proxy string of the other nodes
	ClusterSecret string        `conf:"cluster-secret"`               // peerPush calls between nodes must carry it; required with peers or a locator
	MaxHTTPBody   int64         `conf:"max-http-body"`                // largest HTTP trigger body, bytes
	SendRate      int           `conf:"send-rate" want:"size"`        // bytes per second a connection may send to others, as json frames
	Hosts         []string      `conf:"hosts"`                        // Host names served; empty: loopback names on loopback, any elsewhere
	ReadTimeout   time.Duration `conf:"http-read-timeout"`            // an HTTP request, headers and body, must arrive within it
	Announce      bool          `conf:"announce"`                     // rooms send join and leave frames to their json-mode members
	Relay         string        `conf:"relay" want:"interest|all"`    // "interest": a room message goes to the peers with a member in it; "all": to every peer

	CallAllow       string `conf:"call-allow"`                // what call may reach: "App.Server.Obj:fn1,fn2;Other.Server.Obj:*" (gateway.go); empty: nothing
	CallConcurrency int    `conf:"call-concurrency"`          // calls of one connection in flight at once
	CallMaxArgs     int    `conf:"call-max-args" want:"size"` // largest args of a call, bytes of JSON

	TLSCert string `conf:"tls-cert"` // PEM certificate chain of the ssl adapters (tls.go)
	TLSKey  string `conf:"tls-key"`  // PEM private key of tls-cert

	Hook        string        `conf:"hook" want:"proxy"`            // servant asked before subscribe and publish (hook.go); empty: none
	HookTimeout time.Duration `conf:"hook-timeout"`                 // bound of each hook call
	HookFail    string        `conf:"hook-fail" want:"closed|open"` // "closed": a hook that fails refuses; "open": lets through
}

// DefaultSettings returns safe defaults for a public push server.
func DefaultSettings() Settings {
	return Settings{Store: "file", History: 50, HistoryDisk: 256 << 20, MaxMessage: 64 << 10,
		QueueMessages: 256, QueueBytes: 1 << 20, MaxRooms: 64, MaxRoomName: 128, CommandRate: 20, CommandBurst: 40,
		PingInterval: 30 * time.Second, IdleTimeout: 75 * time.Second, WriteTimeout: 10 * time.Second,
		MaxHTTPBody: 1 << 20, SendRate: 64 << 10, ReadTimeout: 10 * time.Second, Relay: "interest",
		CallConcurrency: 8, CallMaxArgs: 16 << 10, HookTimeout: time.Second, HookFail: "closed"}
}

// check reports settings that contradict each other. An escaped message must fit in half a
// queue: half is the most one sender queues at once and the most a history replay fills, so each
// leaves room for the other. A room's full history must fit the history memory bound.
func (s Settings) check() error {
	f, perEntry := maxFrame(s), s.MaxRoomName+s.MaxMessage+historyEntryOverhead
	switch {
	case 2*f > s.QueueBytes:
		return fmt.Errorf("queue-bytes (%d) is too small for max-message (%d) and max-room-name (%d): "+
			"a message can grow to %d bytes once JSON-escaped and must fit in half the queue; "+
			"raise queue-bytes to at least %d or lower max-message", s.QueueBytes, s.MaxMessage, s.MaxRoomName, f, 2*f)
	case s.PingInterval >= s.IdleTimeout:
		return fmt.Errorf("ping-interval (%d ms) must be less than idle-timeout (%d ms), or idle connections are dropped between pings",
			s.PingInterval.Milliseconds(), s.IdleTimeout.Milliseconds())
	case s.History > s.historyBytes()/perEntry:
		return fmt.Errorf("history (%d) x max-message (%d) is more than the %d bytes all rooms' history may hold: "+
			"keep history at most %d, lower max-message or raise history-disk", s.History, s.MaxMessage, s.historyBytes(), s.historyBytes()/perEntry)
	case s.HookTimeout >= s.IdleTimeout:
		return fmt.Errorf("hook-timeout (%d ms) must be less than idle-timeout (%d ms): a connection reads nothing while its hook runs",
			s.HookTimeout.Milliseconds(), s.IdleTimeout.Milliseconds())
	case s.Store == "file" && s.HistoryDisk < minHistoryDisk:
		return fmt.Errorf("history-disk (%d) is less than %d bytes", s.HistoryDisk, minHistoryDisk)
	}
	return nil
}

// historyBytes bounds all rooms' history in memory. With the file store it is a quarter of
// history-disk: a record takes less than its history cost, and the log holds at most twice its
// compacted size, plus the compacted copy while it is written.
func (s Settings) historyBytes() int {
	if s.Store == "file" {
		return int(min(maxHistoryBytes, s.HistoryDisk/4))
	}
	return maxHistoryBytes
}

// live holds the settings in force, which a config file pulled while the server runs may replace.
type live struct {
	p  atomic.Pointer[Settings]
	mu sync.Mutex // serialises apply
}

func newLive(s Settings) *live {
	l := &live{}
	l.set(s)
	return l
}

func (l *live) get() *Settings { return l.p.Load() }
func (l *live) set(s Settings) { l.p.Store(&s) }

// restartKeys are the keys read only at start: a file pulled later is applied without them.
var restartKeys = map[string]bool{"store": true, "hello": true, "peers": true, "cluster-secret": true, "ping-interval": true,
	"http-read-timeout": true, "config-files": true, "tls-cert": true, "tls-key": true}

// apply puts in force the <websocket> section of a file pulled while the server runs, read over
// the settings in force with the same checks; on an error nothing changes. restartKeys keep their
// value until a restart. The answer names the keys that changed, e.g.
// "applied: push-token, history; needs a restart: peers".
func (l *live) apply(name string, c *tars.Conf) (string, error) {
	if _, ok := websocketSection(c); !ok {
		return "written, no <websocket> section", nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.get()
	s, files, err := loadSettings(c, *old)
	if err != nil {
		return "", fmt.Errorf("%s: %w; nothing changed", name, err)
	}
	var applied, restart []string
	was, now := reflect.ValueOf(old).Elem(), reflect.ValueOf(&s).Elem()
	for i := range now.NumField() {
		switch key := now.Type().Field(i).Tag.Get("conf"); {
		case reflect.DeepEqual(was.Field(i).Interface(), now.Field(i).Interface()):
		case restartKeys[key]:
			restart = append(restart, key)
			now.Field(i).Set(was.Field(i))
		default:
			applied = append(applied, key)
		}
	}
	if files != nil {
		restart = append(restart, "config-files")
	}
	if err := s.check(); err != nil {
		return "", fmt.Errorf("%s: with the values kept until a restart, %w; nothing changed", name, err)
	}
	l.set(s)
	answer := "applied: " + cmp.Or(strings.Join(applied, ", "), "nothing")
	if restart != nil {
		answer += "; needs a restart: " + strings.Join(restart, ", ")
	}
	return answer, nil
}

// websocketKeys are the keys of <websocket>: the conf tags of Settings, and config-files.
var websocketKeys = func() map[string]bool {
	keys := map[string]bool{"config-files": true}
	for f := range reflect.TypeFor[Settings]().Fields() {
		keys[f.Tag.Get("conf")] = true
	}
	return keys
}()

// websocketSection returns the path of c's <websocket> section: a server config's, or a lone one.
func websocketSection(c *tars.Conf) (string, bool) {
	for _, path := range []string{websocketPath, "/websocket"} {
		if c.Sections(path) != nil {
			return path, true
		}
	}
	return websocketPath, false
}

// loadSettings reads c's <websocket> section over base and checks the result; it returns the
// settings and the config files to pull at start. Each field is read by its type and want tag
// (proxy, size, min0, or the allowed values "a|b"). The section is ours, so an unknown key is an
// error: most likely a typo. Errors name the key path and the value.
func loadSettings(c *tars.Conf, base Settings) (Settings, []string, error) {
	path, _ := websocketSection(c)
	r := &tars.ConfReader{C: c}
	if i := slices.IndexFunc(c.Keys(path), func(k string) bool { return !websocketKeys[k] }); i >= 0 {
		r.Err = fmt.Errorf("config %s<%s>: unknown key", path, c.Keys(path)[i])
	}
	p := func(key string) string { return path + "<" + key + ">" }
	s := base
	v := reflect.ValueOf(&s).Elem()
	for i, f := range reflect.VisibleFields(v.Type()) {
		key, want := p(f.Tag.Get("conf")), f.Tag.Get("want")
		switch fv := v.Field(i).Addr().Interface().(type) {
		case *string:
			*fv = r.Str(key, *fv)
			if want == "proxy" {
				r.Proxy(key, *fv) // records the error of one that does not parse
			} else if vals := strings.Split(want, "|"); len(vals) > 1 && !slices.Contains(vals, *fv) {
				r.Fail(key, *fv, strings.Join(vals, " or "))
			}
		case *int:
			switch want {
			case "size":
				*fv = r.IntSize(key, *fv)
			case "min0":
				*fv = r.Int(key, *fv, 0)
			default:
				*fv = r.Int(key, *fv, 1)
			}
		case *int64:
			*fv = r.Size(key, *fv)
		case *time.Duration:
			*fv = r.Ms(key, *fv, 1)
		case *[]string:
			if l := r.List(key); l != nil {
				*fv = l
			}
		case *bool:
			if x := r.Str(key, ""); x != "" {
				var err error
				if *fv, err = strconv.ParseBool(x); err != nil {
					r.Fail(key, x, "true or false")
				}
			}
		case *float64:
			if x := r.Str(key, ""); x != "" {
				if n, err := strconv.ParseFloat(x, 64); err != nil || !(n > 0) || math.IsInf(n, 0) {
					r.Fail(key, x, "a positive number of commands per second")
				} else {
					*fv = n
				}
			}
		}
	}
	if _, err := callAllow(s.CallAllow); err != nil {
		r.Fail(p("call-allow"), s.CallAllow, "App.Server.Obj:fn1,fn2;Other.Server.Obj:*, but "+err.Error())
	}
	if v, ok := c.Lookup(p("ping-interval")); ok && r.Err == nil && s.PingInterval >= s.IdleTimeout {
		r.Fail(p("ping-interval"), v,
			fmt.Sprintf("less than idle-timeout (%d ms), or idle connections are dropped between pings", s.IdleTimeout.Milliseconds()))
	}
	if err := s.check(); r.Err == nil && err != nil {
		r.Err = fmt.Errorf("config %s: %w", path, err)
	}
	// Peers, listed or from the registry, need the secret; the error never shows its value.
	if r.Err == nil && (s.Peers != "" || c.Get("/tars/application/client<locator>") != "") && len(s.ClusterSecret) < minClusterSecret {
		r.Err = fmt.Errorf("config %s<cluster-secret>: required, at least %d characters, when peers or a locator is set: the nodes of a cluster prove themselves to each other with it",
			path, minClusterSecret)
	}
	return s, r.List(p("config-files")), r.Err
}
