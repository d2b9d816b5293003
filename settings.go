package main

import (
	"cmp"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// Settings are the server's own knobs, read from the config section
// /tars/application/websocket; each field's conf tag is its key. The zero
// value is not usable; start from DefaultSettings.
type Settings struct {
	Store         string        `conf:"store"`             // "file" (the default) or "memory"
	History       int           `conf:"history"`           // messages kept per room for history|ROOM
	MaxMessage    int           `conf:"max-message"`       // largest WebSocket message accepted, bytes
	QueueMessages int           `conf:"queue-messages"`    // per-connection outgoing queue, messages
	QueueBytes    int           `conf:"queue-bytes"`       // per-connection outgoing queue, bytes
	MaxRooms      int           `conf:"max-rooms"`         // rooms one connection may join
	MaxRoomName   int           `conf:"max-room-name"`     // longest room name, bytes
	Origins       []string      `conf:"origins"`           // allowed browser origins besides the page's own; "*" allows any
	MaxConnsPerIP int           `conf:"max-conns-per-ip"`  // 0: no limit (many users share an address behind NAT)
	CommandRate   float64       `conf:"command-rate"`      // commands per second per connection (token bucket refill)
	CommandBurst  int           `conf:"command-burst"`     // token bucket size
	PingInterval  time.Duration `conf:"ping-interval"`     // protocol-level ping from the writer
	IdleTimeout   time.Duration `conf:"idle-timeout"`      // read deadline, refreshed by any traffic
	WriteTimeout  time.Duration `conf:"write-timeout"`     // deadline for each write
	PushToken     string        `conf:"push-token"`        // when set, HTTP triggers and PushObj require it
	RoomSecret    string        `conf:"room-secret"`       // when set, subscribe needs a room token signed with it
	Hello         string        `conf:"hello"`             // proxy string of the Hello servant that hello|NAME calls
	Peers         string        `conf:"peers"`             // static cluster peers: PushObj proxy string of the other nodes
	ClusterSecret string        `conf:"cluster-secret"`    // peerPush calls between nodes must carry it; required with peers or a locator
	MaxHTTPBody   int64         `conf:"max-http-body"`     // largest HTTP trigger body, bytes
	SendRate      int           `conf:"send-rate"`         // bytes per second a connection may send to others, as json frames
	Hosts         []string      `conf:"hosts"`             // Host names served; empty: loopback names on loopback, any elsewhere
	ReadTimeout   time.Duration `conf:"http-read-timeout"` // an HTTP request, headers and body, must arrive within it
}

// DefaultSettings returns safe defaults for a public push server.
func DefaultSettings() Settings {
	return Settings{
		Store:         "file",
		History:       50,
		MaxMessage:    64 << 10,
		QueueMessages: 256,
		QueueBytes:    1 << 20,
		MaxRooms:      64,
		MaxRoomName:   128,
		CommandRate:   20,
		CommandBurst:  40,
		PingInterval:  30 * time.Second,
		IdleTimeout:   75 * time.Second,
		WriteTimeout:  10 * time.Second,
		MaxHTTPBody:   1 << 20,
		SendRate:      64 << 10,
		ReadTimeout:   10 * time.Second,
	}
}

// check reports settings that contradict each other. A message, once
// escaped, must fit in half a queue: half is the most one sender may queue
// at once (its burst) and the most a history replay fills, so each leaves
// room for the other. A room's full history must fit the history memory
// bound.
func (s Settings) check() error {
	if f := maxFrame(s); 2*f > s.QueueBytes {
		return fmt.Errorf("queue-bytes (%d) is too small for max-message (%d) and max-room-name (%d): "+
			"a message can grow to %d bytes once JSON-escaped and must fit in half the queue; "+
			"raise queue-bytes to at least %d or lower max-message", s.QueueBytes, s.MaxMessage, s.MaxRoomName, f, 2*f)
	}
	if s.PingInterval >= s.IdleTimeout {
		return fmt.Errorf("ping-interval (%d ms) must be less than idle-timeout (%d ms), or idle connections are dropped between pings",
			s.PingInterval.Milliseconds(), s.IdleTimeout.Milliseconds())
	}
	if per := s.MaxRoomName + s.MaxMessage + historyEntryOverhead; s.History > maxHistoryBytes/per {
		return fmt.Errorf("history (%d) x max-message (%d) is more than the %d bytes all rooms' history may hold: "+
			"keep history at most %d or lower max-message", s.History, s.MaxMessage, maxHistoryBytes, maxHistoryBytes/per)
	}
	return nil
}

// live holds the settings in force. A config file pulled while the server
// runs may replace them (apply); readers take the current ones at each use.
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

// restartKeys are the keys read only at start: a file pulled later that
// changes them is applied without them.
var restartKeys = map[string]bool{
	"store": true, "hello": true, "peers": true, "cluster-secret": true,
	"ping-interval": true, "http-read-timeout": true, "config-files": true,
}

// apply puts in force the <websocket> section of a config file pulled while
// the server runs, read over the settings in force with the same checks; on
// an error nothing changes. Keys in restartKeys keep their value until a
// restart. The answer names the keys that changed, e.g.
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
		if reflect.DeepEqual(was.Field(i).Interface(), now.Field(i).Interface()) {
			continue
		}
		key := now.Type().Field(i).Tag.Get("conf")
		if restartKeys[key] {
			restart = append(restart, key)
			now.Field(i).Set(was.Field(i))
		} else {
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
