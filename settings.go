package main

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Settings are the server's own knobs, read from the config section
// /tars/application/websocket. The zero value is not usable; start from
// DefaultSettings.
type Settings struct {
	Store         string        // "file" (the default) or "memory"
	History       int           // messages kept per room for history|ROOM
	MaxMessage    int           // largest WebSocket message accepted, bytes
	QueueMessages int           // per-connection outgoing queue, messages
	QueueBytes    int           // per-connection outgoing queue, bytes
	MaxRooms      int           // rooms one connection may join
	MaxRoomName   int           // longest room name, bytes
	Origins       []string      // allowed browser origins besides the page's own; "*" allows any
	MaxConnsPerIP int           // 0: no limit (many users share an address behind NAT)
	CommandRate   float64       // commands per second per connection (token bucket refill)
	CommandBurst  int           // token bucket size
	PingInterval  time.Duration // protocol-level ping from the writer
	IdleTimeout   time.Duration // read deadline, refreshed by any traffic
	WriteTimeout  time.Duration // deadline for each write
	PushToken     string        // when set, HTTP triggers and PushObj require it
	RoomSecret    string        // when set, subscribe needs a room token signed with it
	Hello         string        // proxy string of the Hello servant that hello|NAME calls
	Peers         string        // static cluster peers: PushObj proxy string of the other nodes
	ClusterSecret string        // peerPush calls between nodes must carry it; required with peers or a locator
	MaxHTTPBody   int64         // largest HTTP trigger body, bytes
	SendRate      int           // bytes per second a connection may send to others, as json frames
	Hosts         []string      // Host names served; empty: loopback names on loopback, any elsewhere
	ReadTimeout   time.Duration // an HTTP request, headers and body, must arrive within it
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
	if per := s.MaxRoomName + s.MaxMessage + historyEntryOverhead; s.History > maxHistoryBytes/per {
		return fmt.Errorf("history (%d) x max-message (%d) is more than the %d bytes all rooms' history may hold: "+
			"keep history at most %d or lower max-message", s.History, s.MaxMessage, maxHistoryBytes, maxHistoryBytes/per)
	}
	return nil
}

// live holds the settings in force. A config file pulled while the server
// runs may replace them; readers take the current ones at each use.
type live struct{ p atomic.Pointer[Settings] }

func newLive(s Settings) *live {
	l := &live{}
	l.set(s)
	return l
}

func (l *live) get() *Settings { return l.p.Load() }
func (l *live) set(s Settings) { l.p.Store(&s) }
