// Package gorillaref is a reference chat/push server in the style of
// gorilla/websocket's chat example: one hub goroutine owns the rooms, each
// client has a reader and a writer goroutine and a buffered send channel.
// It speaks the product's browser protocol and HTTP triggers, so the same
// load can be pointed at either.
package gorillaref

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// As in the chat example.
const (
	writeWait      = 10 * time.Second
	pongWait       = 60 * time.Second
	pingPeriod     = (pongWait * 9) / 10
	maxMessageSize = 64 << 10
	sendBuffer     = 256
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	CheckOrigin:     func(*http.Request) bool { return true },
}

type client struct {
	hub   *Hub
	conn  *websocket.Conn
	send  chan []byte
	rooms map[string]bool // owned by the hub goroutine
}

// op is one request to the hub goroutine.
type op struct {
	kind  int
	c     *client // the sender, or nil for an HTTP trigger
	room  string  // "" with opPush means everyone
	msg   []byte
	reply []byte // sent to c after the operation
}

const (
	opSubscribe = iota
	opUnsubscribe
	opPush
	opReply
)

// Hub owns the clients and the rooms.
type Hub struct {
	clients    map[*client]bool
	rooms      map[string]map[*client]bool
	register   chan *client
	unregister chan *client
	ops        chan op
}

// NewHub returns a hub; Run must be running for it to serve.
func NewHub() *Hub {
	return &Hub{
		clients:    make(map[*client]bool),
		rooms:      make(map[string]map[*client]bool),
		register:   make(chan *client),
		unregister: make(chan *client),
		ops:        make(chan op, 256),
	}
}

// Run is the hub goroutine.
func (h *Hub) Run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
		case c := <-h.unregister:
			h.remove(c)
		case o := <-h.ops:
			h.do(o)
		}
	}
}

func (h *Hub) remove(c *client) {
	if !h.clients[c] {
		return
	}
	for room := range c.rooms {
		h.leave(c, room)
	}
	delete(h.clients, c)
	close(c.send)
}

func (h *Hub) leave(c *client, room string) {
	delete(c.rooms, room)
	delete(h.rooms[room], c)
	if len(h.rooms[room]) == 0 {
		delete(h.rooms, room)
	}
}

func (h *Hub) do(o op) {
	if o.c != nil && !h.clients[o.c] {
		return // already gone
	}
	switch o.kind {
	case opSubscribe:
		if h.rooms[o.room] == nil {
			h.rooms[o.room] = make(map[*client]bool)
		}
		h.rooms[o.room][o.c] = true
		o.c.rooms[o.room] = true
	case opUnsubscribe:
		h.leave(o.c, o.room)
	case opPush:
		members := h.clients
		if o.room != "" {
			members = h.rooms[o.room]
		}
		for c := range members {
			h.deliver(c, o.msg)
		}
	}
	if o.reply != nil && h.clients[o.c] {
		h.deliver(o.c, o.reply)
	}
}

// deliver queues msg for c, dropping c if its buffer is full.
func (h *Hub) deliver(c *client, msg []byte) {
	select {
	case c.send <- msg:
	default:
		h.remove(c)
	}
}

// Handler serves the WebSocket at "/" and the HTTP triggers.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", h.serveWS)
	mux.HandleFunc("/Index/pushByRoom", func(w http.ResponseWriter, r *http.Request) {
		room, msg := r.FormValue("roomNum"), r.FormValue("message")
		if room == "" || msg == "" {
			http.Error(w, "missing roomNum or message", http.StatusBadRequest)
			return
		}
		h.ops <- op{kind: opPush, room: room, msg: []byte(msg)}
		io.WriteString(w, "pushBy room success")
	})
	mux.HandleFunc("/Index/pushAll", func(w http.ResponseWriter, r *http.Request) {
		msg := r.FormValue("message")
		if msg == "" {
			http.Error(w, "missing message", http.StatusBadRequest)
			return
		}
		h.ops <- op{kind: opPush, msg: []byte(msg)}
		io.WriteString(w, "pushBy all success")
	})
	return mux
}

func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered
	}
	c := &client{hub: h, conn: conn, send: make(chan []byte, sendBuffer), rooms: make(map[string]bool)}
	h.register <- c
	go c.writePump()
	go c.readPump()
}

func (c *client) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { c.conn.SetReadDeadline(time.Now().Add(pongWait)); return nil })
	for {
		_, message, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		c.conn.SetReadDeadline(time.Now().Add(pongWait))
		c.hub.ops <- c.command(string(message))
	}
}

// command turns one frame "cmd|data" into an op for the hub.
func (c *client) command(frame string) op {
	name, data, _ := strings.Cut(frame, "|")
	reply := func(s string) op { return op{kind: opReply, c: c, reply: []byte(s)} }
	var m struct {
		RoomNum string `json:"roomNum"`
		Message string `json:"message"`
	}
	switch name {
	case "subscribe", "unsubscribe":
		if data == "" {
			return reply("Error: " + name + ": empty room name")
		}
		kind, verb := opSubscribe, "Subscribe"
		if name == "unsubscribe" {
			kind, verb = opUnsubscribe, "Unsubscribe"
		}
		return op{kind: kind, c: c, room: data, reply: []byte(verb + " roomNum:" + data + " success!")}
	case "sendByRoom", "broadcast":
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			return reply("Error: " + name + ": bad JSON: " + err.Error())
		}
		if m.Message == "" || (name == "sendByRoom" && m.RoomNum == "") {
			return reply("Error: " + name + ": missing roomNum or message")
		}
		if name == "broadcast" {
			return op{kind: opPush, c: c, msg: []byte(m.Message), reply: []byte("Broadcast success!")}
		}
		return op{kind: opPush, c: c, room: m.RoomNum, msg: []byte(m.Message), reply: []byte("SendByRoom success!")}
	case "ping":
		return reply("pong")
	}
	return reply("Rsp from server: this is server")
}

func (c *client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, message); err != nil {
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}
