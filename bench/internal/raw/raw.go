// Package raw is the baseline: it does the WebSocket handshake by hand and
// writes each pushed frame straight to the members' sockets from the
// goroutine that received the push. No queues, no writer goroutines, no
// timers; a room is a plain slice. It answers subscribe (and the in-band
// pushes) so the same load generator can drive it, and nothing else.
package raw

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	maxPayload = 64 << 10
	writeWait  = 10 * time.Second
)

// WebSocket opcodes.
const (
	opText  = 1
	opClose = 8
	opPing  = 9
	opPong  = 10
)

type conn struct {
	nc    net.Conn
	mu    sync.Mutex // one write at a time
	rooms []string   // guarded by Server.mu
}

// Server is the raw baseline. The zero value is ready to use.
type Server struct {
	mu    sync.RWMutex
	all   []*conn
	rooms map[string][]*conn
}

// Handler serves the WebSocket at "/" and the HTTP triggers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serveWS)
	mux.HandleFunc("/Index/pushByRoom", func(w http.ResponseWriter, r *http.Request) {
		room, msg := r.FormValue("roomNum"), r.FormValue("message")
		if room == "" || msg == "" {
			http.Error(w, "missing roomNum or message", http.StatusBadRequest)
			return
		}
		s.push(room, msg)
		io.WriteString(w, "pushBy room success")
	})
	mux.HandleFunc("/Index/pushAll", func(w http.ResponseWriter, r *http.Request) {
		msg := r.FormValue("message")
		if msg == "" {
			http.Error(w, "missing message", http.StatusBadRequest)
			return
		}
		s.push("", msg)
		io.WriteString(w, "pushBy all success")
	})
	return mux
}

// frame returns a server-to-client (unmasked) frame.
func frame(op byte, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+10)
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// push writes msg to every member of room ("" means everyone), in turn.
func (s *Server) push(room, msg string) {
	f := frame(opText, []byte(msg))
	s.mu.RLock()
	members := s.all
	if room != "" {
		members = s.rooms[room]
	}
	members = slices.Clone(members)
	s.mu.RUnlock()
	for _, c := range members {
		c.write(f)
	}
}

func (c *conn) write(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := c.nc.Write(f); err != nil {
		c.nc.Close() // the reader sees it and removes c
	}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "not a WebSocket handshake", http.StatusBadRequest)
		return
	}
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	nc.SetWriteDeadline(time.Now().Add(writeWait))
	_, err = fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	if err != nil {
		nc.Close()
		return
	}
	c := &conn{nc: nc}
	s.mu.Lock()
	s.all = append(s.all, c)
	s.mu.Unlock()
	s.read(c, rw.Reader)
	s.remove(c)
	nc.Close()
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = deleteConn(s.all, c)
	for _, room := range c.rooms {
		s.rooms[room] = deleteConn(s.rooms[room], c)
		if len(s.rooms[room]) == 0 {
			delete(s.rooms, room)
		}
	}
}

func deleteConn(cs []*conn, c *conn) []*conn {
	if i := slices.Index(cs, c); i >= 0 {
		cs[i] = cs[len(cs)-1]
		cs[len(cs)-1] = nil
		cs = cs[:len(cs)-1]
	}
	return cs
}

// read handles client frames until the connection ends.
func (s *Server) read(c *conn, br *bufio.Reader) {
	var buf []byte
	for {
		op, payload, err := readFrame(br, buf)
		if err != nil {
			return
		}
		buf = payload[:0]
		switch op {
		case opText:
			s.command(c, string(payload))
		case opPing:
			c.write(frame(opPong, payload))
		case opClose:
			if len(payload) > 2 {
				payload = payload[:2]
			}
			c.write(frame(opClose, payload))
			return
		}
	}
}

func (s *Server) command(c *conn, text string) {
	name, data, _ := strings.Cut(text, "|")
	var m struct {
		RoomNum string `json:"roomNum"`
		Message string `json:"message"`
	}
	switch name {
	case "subscribe":
		s.mu.Lock()
		if s.rooms == nil {
			s.rooms = make(map[string][]*conn)
		}
		s.rooms[data] = append(s.rooms[data], c)
		c.rooms = append(c.rooms, data)
		s.mu.Unlock()
		c.write(frame(opText, []byte("Subscribe roomNum:"+data+" success!")))
	case "sendByRoom", "broadcast":
		if json.Unmarshal([]byte(data), &m) != nil {
			c.write(frame(opText, []byte("Error: "+name+": bad JSON")))
			return
		}
		if name == "broadcast" {
			s.push("", m.Message)
			c.write(frame(opText, []byte("Broadcast success!")))
			return
		}
		s.push(m.RoomNum, m.Message)
		c.write(frame(opText, []byte("SendByRoom success!")))
	}
}

// readFrame reads one client frame (masked, unfragmented), reusing buf.
func readFrame(br *bufio.Reader, buf []byte) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 {
		return 0, nil, errors.New("fragmented frames are not supported")
	}
	if h[1]&0x80 == 0 {
		return 0, nil, errors.New("client frame not masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > maxPayload {
		return 0, nil, fmt.Errorf("frame of %d bytes, limit %d", n, maxPayload)
	}
	var mask [4]byte
	if _, err := io.ReadFull(br, mask[:]); err != nil {
		return 0, nil, err
	}
	payload = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return h[0] & 0x0f, payload, nil
}
