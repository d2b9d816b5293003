// Package scale is the cluster scenario at scale: many connections over
// the nodes of a product cluster, held by several generator processes (one
// per node, each under the per-process descriptor limit), one room that
// spans every node and many rooms each on one node, and a check that every
// push reached every member of its room exactly once.
//
// The harness (cmd/bench -scale) starts the nodes and one Hold process per
// node, pushes over HTTP (Push), then hands each Hold the list of pushes
// that succeeded; each checks its connections against it and reports.
package scale

import (
	"strconv"
	"time"
)

// BigRoom is the room every connection joins, on every node.
const BigRoom = "all"

// Layout places Conns connections over Nodes nodes and Rooms small rooms:
// room r lives on node r mod Nodes, and connection j of node n joins
// BigRoom and room n + Nodes*(j mod RoomsOn(n)).
type Layout struct{ Nodes, Conns, Rooms int }

// NodeConns is how many connections node n holds.
func (l Layout) NodeConns(n int) int {
	c := l.Conns / l.Nodes
	if n < l.Conns%l.Nodes {
		c++
	}
	return c
}

// RoomsOn is how many small rooms live on node n.
func (l Layout) RoomsOn(n int) int {
	c := l.Rooms / l.Nodes
	if n < l.Rooms%l.Nodes {
		c++
	}
	return c
}

// Room is the small room of connection j of node n.
func (l Layout) Room(n, j int) int { return n + l.Nodes*(j%l.RoomsOn(n)) }

// Home is the node whose connections are room r's members.
func (l Layout) Home(r int) int { return r % l.Nodes }

// Members is how many connections room r has; -1 is BigRoom.
func (l Layout) Members(r int) int {
	if r < 0 {
		return l.Conns
	}
	n, k, per := l.Home(r), r/l.Nodes, l.RoomsOn(l.Home(r))
	m := l.NodeConns(n) / per
	if k < l.NodeConns(n)%per {
		m++
	}
	return m
}

// RoomName is the name of room r; -1 is BigRoom.
func RoomName(r int) string {
	if r < 0 {
		return BigRoom
	}
	return "s" + strconv.Itoa(r)
}

// Pushed is one push the server accepted: Room -1 is BigRoom.
type Pushed struct {
	Seq  int32 `json:"s"`
	Room int32 `json:"r"`
}

// message is "m<seq>.<wall clock ns>." ("a..." for BigRoom) padded with
// 'x' to 64 bytes: the processes share the machine's wall clock, so a
// receiver can take the latency.
func message(seq int, big bool, at time.Time) string {
	b := make([]byte, 0, 64)
	b = append(b, "ma"[btoi(big)])
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, at.UnixNano(), 10)
	b = append(b, '.')
	for len(b) < 64 {
		b = append(b, 'x')
	}
	return string(b)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parse returns the sequence number and send time of a message, and
// whether it was for BigRoom.
func parse(b []byte) (seq int, sent int64, big, ok bool) {
	if len(b) < 4 || b[0] != 'm' && b[0] != 'a' {
		return 0, 0, false, false
	}
	var v [2]int64
	i := 1
	for k := range v {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 19 {
			v[k] = v[k]*10 + int64(b[i]-'0')
			i++
		}
		if i == start || i >= len(b) || b[i] != '.' {
			return 0, 0, false, false
		}
		i++
	}
	if v[0] > 1<<30 {
		return 0, 0, false, false
	}
	return int(v[0]), v[1], b[0] == 'a', true
}
