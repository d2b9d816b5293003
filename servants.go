package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// Return codes of PushObj calls refused before anything is pushed; the
// packet's sResultDesc says why. Positive, so they cannot be mistaken for
// the framework's own (negative) codes.
const (
	pushBadArgument int32 = 1 // empty or too long room, empty or too long message
	pushDenied      int32 = 2 // push-token is set and the call's context lacks it; peerPush: not a peer, or no cluster secret
)

// pushTokenKey is the request context key that carries the push token, as
// the HTTP triggers' parameter does.
const pushTokenKey = "token"

// registrar takes servant handlers: a *tars.App, or a *tars.Server in tests.
type registrar interface {
	Handle(servant, fn string, h tars.HandlerFunc)
}

// registerPush registers PushObj (tars/Push.tars) under name:
//
//	int pushByRoom(string roomNum, string message, out int delivered);
//	int pushAll(string message, out int delivered);
//	int pushToConn(string connId, string message, out int delivered);
//	int peerPush(vector<PeerMessage> msgs, string token, out vector<int> delivered);
//	int peerInterest(string token, string origin, string epoch, bool full, vector<string> add, vector<string> remove, vector<string> gaps);
//	int peerPresence(string token, string roomNum, out int count, out vector<PeerMember> members);
//
// The first two return 0 and the number of connections the message was
// queued for, on this node and, with a cluster, on the peers that answered
// in time (Cluster.PushWait). pushToConn delivers to one connection,
// here or, through peerPush, on the node whose tag ends its id (0 or 1).
// peerPush delivers other nodes' messages here
// only (cluster.go); it takes calls from the hosts of this node's peers
// that carry cluster-secret as token, not the push token. peerInterest,
// checked the same way, records which rooms a peer has members in. Each call checks
// against the settings in force.
func registerPush(s registrar, name string, hub *Hub, l *live, cl *Cluster) {
	registerPeerPresence(s, name, hub, l, cl)
	push := func(ctx context.Context, ev event) (int, error) {
		if cl == nil {
			return hub.Deliver(newFrames(ev), nil)
		}
		return cl.PushWait(ctx, ev)
	}
	check := func(cur *tars.Current, room *string, msg string) error {
		set := *l.get()
		if !checkPushToken(&set, cur.Context[pushTokenKey]) {
			return codeErr{pushDenied, fmt.Errorf("%s: missing or wrong push token (context key %q)", cur.Func, pushTokenKey)}
		}
		if room != nil {
			if err := checkRoom(*room, &set); err != nil {
				return codeErr{pushBadArgument, fmt.Errorf("%s: roomNum: %w", cur.Func, err)}
			}
		}
		if err := checkMessage(&msg, &set); err != nil {
			return codeErr{pushBadArgument, fmt.Errorf("%s: message: %w", cur.Func, err)}
		}
		return nil
	}
	s.Handle(name, "pushByRoom", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		room, err := in.String(1, "roomNum")
		if err != nil {
			return 0, err
		}
		msg, err := in.String(2, "message")
		if err != nil {
			return 0, err
		}
		if err := check(cur, &room, msg); err != nil {
			return codeOf(err), err
		}
		n, err := push(ctx, event{Kind: kindMessage, Room: room, From: fromTars, Text: msg, Time: time.Now()})
		if err != nil {
			return tars.ServerUnknownErr, err
		}
		out.PutInt32(0, "", 0)
		out.PutInt32(3, "delivered", int32(n))
		return tars.Success, nil
	})
	s.Handle(name, "pushAll", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		msg, err := in.String(1, "message")
		if err != nil {
			return 0, err
		}
		if err := check(cur, nil, msg); err != nil {
			return codeOf(err), err
		}
		n, _ := push(ctx, event{Kind: kindMessage, From: fromTars, Text: msg, Time: time.Now()}) // no history: cannot fail
		out.PutInt32(0, "", 0)
		out.PutInt32(2, "delivered", int32(n))
		return tars.Success, nil
	})
	s.Handle(name, "pushToConn", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		id, err := in.String(1, "connId")
		if err != nil {
			return 0, err
		}
		msg, err := in.String(2, "message")
		if err != nil {
			return 0, err
		}
		if err := check(cur, nil, msg); err != nil {
			return codeOf(err), err
		}
		if _, tag, _ := strings.Cut(id, "."); len(id) > peerFromMax || checkID(id) != nil || tag == "" {
			err := codeErr{pushBadArgument, fmt.Errorf("%s: connId: want a connection id c<N>.<tag>", cur.Func)}
			return codeOf(err), err
		}
		ev := event{Kind: kindMessage, From: fromTars, Text: msg, Time: time.Now(), To: id}
		var n int
		if _, tag, _ := strings.Cut(id, "."); tag == hub.idTag || cl == nil {
			n, _ = hub.DeliverLocal(newFrames(ev)).wait() // no room, no history: cannot fail
		} else {
			n, _ = cl.PushWait(ctx, ev)
		}
		out.PutInt32(0, "", 0)
		out.PutInt32(3, "delivered", int32(n))
		return tars.Success, nil
	})
	s.Handle(name, "peerInterest", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		var err error = codeErr{pushDenied, fmt.Errorf("%s: the caller is not on a peer's host", cur.Func)}
		if cl != nil && cl.fromPeer(cur.RemoteAddr) {
			err = readPeerInterest(in, *l.get(), func(origin, epoch string, full bool, add, remove, gaps []string) error {
				err := cl.setInterest(cur.RemoteAddr, origin, epoch, full, add, remove)
				if err == nil {
					hub.gap(gaps)
				}
				return err
			})
		}
		if err != nil {
			hub.log.Warn("peerInterest: call refused", "caller", cur.RemoteAddr.String(), "err", err)
			return codeOf(err), err
		}
		out.PutInt32(0, "", 0)
		return tars.Success, nil
	})
	s.Handle(name, "peerPush", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		var msgs []peerMessage
		var err error
		if cl == nil || !cl.fromPeer(cur.RemoteAddr) {
			err = codeErr{pushDenied, fmt.Errorf("%s: the caller is not on a peer's host", cur.Func)}
		} else {
			msgs, err = readPeerPush(in, l.get().ClusterSecret)
		}
		if err != nil {
			hub.log.Warn("peerPush: call refused", "caller", cur.RemoteAddr.String(), "err", err)
			return codeOf(err), err
		}
		now, set := time.Now(), *l.get()
		counts := make([]int32, len(msgs))
		items := make([]*logItem, len(msgs)) // delivered together: their writes share a sync
		var bad, retimed int
		var first error
		for i := range msgs {
			m := &msgs[i]
			moved, err := checkPeerMessage(m, set, hub.idTag, now)
			if err != nil {
				counts[i] = -1
				if bad++; first == nil {
					first = fmt.Errorf("message %d (origin %q, room %q, from %q): %w", i, m.Origin, m.Room, m.From, err)
				}
				continue
			}
			if moved {
				retimed++
			}
			ev := event{Kind: kindMessage, Room: m.Room, From: m.From, Name: m.Name, Text: m.Text, Time: time.UnixMilli(m.Time), To: m.To}
			items[i] = hub.DeliverLocal(newFrames(ev))
		}
		for i, it := range items {
			if it != nil {
				n, err := it.wait()
				counts[i] = int32(n)
				if err != nil {
					counts[i] = -1
				}
			}
		}
		if bad > 0 || retimed > 0 {
			hub.log.Warn("peerPush: messages refused or retimed", "caller", cur.RemoteAddr.String(),
				"messages", len(msgs), "refused", bad, "retimed", retimed, "first", first)
		}
		out.PutInt32(0, "", 0)
		out.Put(3, "delivered", func(b []byte, tag uint8) []byte { return appendList(b, tag, counts, appendInt32) })
		return tars.Success, nil
	})
}

// Limits of peerPush (cluster.go sends it).
const (
	minClusterSecret = 16              // characters of cluster-secret at least
	peerFromMax      = 64              // bytes of PeerMessage.from
	peerOriginMax    = 300             // bytes of PeerMessage.origin: a host:port
	peerClockSkew    = 5 * time.Minute // a message time further from now is replaced by now
)

// readPeerPush reads peerPush's arguments, the token first: a call without
// the cluster secret is refused before its message list is decoded, and a
// list longer than a sender's batch before anything is allocated for it.
func readPeerPush(in *tars.Args, secret string) ([]peerMessage, error) {
	token, err := in.String(2, "token")
	if err != nil {
		return nil, err
	}
	if !sameSecret(secret, token) {
		return nil, codeErr{pushDenied, errors.New("peerPush: wrong cluster secret (argument token)")}
	}
	var msgs []peerMessage
	err = in.Value(1, "msgs", func(d *tars.Decoder, tag uint8) (err error) {
		msgs, err = readList(d, tag, peerBatchMax, readPeerMessage)
		return err
	})
	if errors.Is(err, errPeerBatch) {
		return nil, codeErr{pushBadArgument, fmt.Errorf("peerPush: msgs: %w", errPeerBatch)}
	}
	return msgs, err
}

// readPeerInterest reads peerInterest's arguments, the token first, then
// the short fields, then the room lists, each bounded (peerInterestMax
// names of valid rooms; gaps, which older nodes do not send, may hold ""),
// and hands them to apply.
func readPeerInterest(in *tars.Args, set Settings, apply func(origin, epoch string, full bool, add, remove, gaps []string) error) error {
	token, err := in.String(1, "token")
	if err != nil {
		return err
	}
	if !sameSecret(set.ClusterSecret, token) {
		return codeErr{pushDenied, errors.New("peerInterest: wrong cluster secret (argument token)")}
	}
	origin, err := in.String(2, "origin")
	if err != nil {
		return err
	}
	epoch, err := in.String(3, "epoch")
	if err != nil {
		return err
	}
	if len(origin) > peerOriginMax || len(epoch) > peerFromMax {
		return codeErr{pushBadArgument, errors.New("peerInterest: origin or epoch too long")}
	}
	full, err := in.Bool(4, "full")
	if err != nil {
		return err
	}
	var lists [3][]string
	for i, name := range []string{"add", "remove", "gaps"} {
		err := in.Value(uint8(5+i), name, func(d *tars.Decoder, tag uint8) (err error) {
			if peek := *d; name == "gaps" {
				if _, ok, err := peek.ReadListLen(tag, false); !ok {
					return err
				}
			}
			lists[i], err = readList(d, tag, peerInterestMax, func(d *tars.Decoder, s *string) error { return d.ReadString(s, 0, true) })
			return err
		})
		if errors.Is(err, errPeerBatch) {
			return codeErr{pushBadArgument, fmt.Errorf("peerInterest: %s: more than %d rooms", name, peerInterestMax)}
		}
		if err != nil {
			return err
		}
		for _, room := range lists[i] {
			if err := checkRoom(room, &set); err != nil && (room != "" || name != "gaps") {
				return codeErr{pushBadArgument, fmt.Errorf("peerInterest: %s: %w", name, err)}
			}
		}
	}
	return apply(origin, epoch, full, lists[0], lists[1], lists[2])
}

// checkPeerMessage reports what is wrong with a message from a peer. Every
// field is bounded, and from must be "http", "tars" or a connection id of
// another node, never one of this node's (ownTag). A time further than
// peerClockSkew from now (a skewed clock, or a message that waited long for
// its peer) is replaced by now, and retimed says so.
func checkPeerMessage(m *peerMessage, set Settings, ownTag string, now time.Time) (retimed bool, err error) {
	if err := checkMessage(&m.Text, &set); err != nil {
		return false, fmt.Errorf("text: %w", err)
	}
	if m.Room != "" {
		if err := checkRoom(m.Room, &set); err != nil {
			return false, fmt.Errorf("room: %w", err)
		}
	}
	_, tag, _ := strings.Cut(m.From, ".")
	if m.From != fromHTTP && m.From != fromTars && (len(m.From) > peerFromMax || checkID(m.From) != nil || tag == "" || tag == ownTag) {
		return false, errors.New("from: want http, tars or a connection id of another node")
	}
	if m.To != "" && (len(m.To) > peerFromMax || checkID(m.To) != nil || m.Room != "") {
		return false, errors.New("to: want a connection id, and no room")
	}
	if m.Name != "" && checkName(m.Name) != nil {
		return false, fmt.Errorf("name: %w", checkName(m.Name))
	}
	if len(m.Origin) > peerOriginMax {
		return false, fmt.Errorf("origin longer than %d bytes", peerOriginMax)
	}
	if d := now.Sub(time.UnixMilli(m.Time)); d > peerClockSkew || d < -peerClockSkew {
		m.Time = now.UnixMilli()
		return true, nil
	}
	return false, nil
}

// sameSecret compares in constant time; an empty secret matches nothing.
func sameSecret(want, got string) bool {
	w, g := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(got))
	return want != "" && subtle.ConstantTimeCompare(w[:], g[:]) == 1
}

// codeErr is an error answered with a given return code.
type codeErr struct {
	code int32
	err  error
}

func (e codeErr) Error() string { return e.err.Error() }
func (e codeErr) Unwrap() error { return e.err }

func codeOf(err error) int32 {
	var ce codeErr
	if errors.As(err, &ce) {
		return ce.code
	}
	return tars.ServerUnknownErr
}

// registerHello registers HelloObj (tars/hello.tars) under name:
//
//	string hello(int no, string name);
//
// The answer names the caller and this server, e.g.
// "hello ann, no 3, from TestApp.WebsocketServer".
func registerHello(s registrar, name, server string) {
	s.Handle(name, "hello", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		no, err := in.Int32(1, "no")
		if err != nil {
			return 0, err
		}
		who, err := in.String(2, "name")
		if err != nil {
			return 0, err
		}
		out.PutString(0, "", fmt.Sprintf("hello %s, no %d, from %s", who, no, server))
		return tars.Success, nil
	})
}

// helloCaller returns the hub's hello|NAME hook: it calls hello(no, name)
// on the servant named by proxy, or on this server's own HelloObj when
// proxy is "", numbering the calls from 1. It is nil when there is neither.
func helloCaller(app *tars.App, proxy string) (func(ctx context.Context, name string) (string, error), error) {
	own := app.Config().ServantName("HelloObj")
	if e, ok := app.Reachable(own); ok && proxy == "" {
		proxy = fmt.Sprintf("%s@tcp -h %s -p %d", own, e.Host, e.Port)
	}
	if proxy == "" {
		return nil, nil
	}
	p, err := app.Client().Proxy(proxy)
	if err != nil {
		return nil, fmt.Errorf("config %s<hello>: %w", websocketPath, err)
	}
	var calls atomic.Int32
	return func(ctx context.Context, name string) (string, error) {
		no := calls.Add(1)
		var answer string
		err := p.Invoke(ctx, "hello",
			func(r *tars.Results) {
				r.PutInt32(1, "no", no)
				r.PutString(2, "name", name)
			},
			func(a *tars.Args) error {
				var err error
				answer, err = a.String(0, "")
				return err
			})
		return answer, err
	}, nil
}

// registerCommands adds the WebSocket server's operator commands to
// AdminObj, and its lines to tars.viewstatus.
func registerCommands(app *tars.App, hub *Hub) {
	app.Command("ws.rooms", "", "lists the rooms with their member counts", func(context.Context, []string) string {
		st := hub.Counts()
		if len(st.Rooms) == 0 {
			return "no rooms"
		}
		var b strings.Builder
		for _, room := range slices.Sorted(maps.Keys(st.Rooms)) {
			fmt.Fprintf(&b, "%s %d\n", room, st.Rooms[room])
		}
		return b.String()
	})
	app.Command("ws.kick", "ROOM", fmt.Sprintf("closes every connection in ROOM (close code %d)", closeKicked),
		func(_ context.Context, args []string) string {
			if len(args) != 1 {
				return "ws.kick: want one room name"
			}
			n := hub.Kick(args[0], closeKicked, "kicked by an operator")
			hub.log.Info("kicked a room", "room", args[0], "connections", n)
			return fmt.Sprintf("ws.kick: closed %d connections in room %s", n, args[0])
		})
	app.Command("ws.stats", "", "shows the WebSocket counters as JSON", func(context.Context, []string) string {
		b, err := json.Marshal(hub.Counts())
		if err != nil {
			return "ws.stats: " + err.Error()
		}
		return string(b)
	})
	app.Status("websocket connections", func() any { return hub.Counts().Connections })
	app.Status("rooms", func() any { return len(hub.Counts().Rooms) })
}
