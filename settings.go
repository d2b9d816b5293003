package main

import "time"

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
	MaxHTTPBody   int64         // largest HTTP trigger body, bytes
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
		ReadTimeout:   10 * time.Second,
	}
}
