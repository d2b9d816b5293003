package main

import (
	"cmp"
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

// Return codes of PushObj calls refused before anything is pushed, sResultDesc saying why;
// positive, unlike the framework's own.
const (
	pushBadArgument int32 = 1 // empty or too long room, empty or too long message
	pushDenied      int32 = 2 // push-token is set and the call's context lacks it; peer calls: not a peer, or no cluster secret

	pushTokenKey     = "token"         // the request context key of the push token
	minClusterSecret = 16              // characters of cluster-secret at least
	peerFromMax      = 64              // bytes of PeerMessage.from
	peerOriginMax    = 300             // bytes of PeerMessage.origin: a host:port
	peerClockSkew    = 5 * time.Minute // a message time further from now is replaced by now
)

// registrar takes servant handlers: a *tars.App, or a *tars.Server in tests.
type registrar interface {
	Handle(servant, fn string, h tars.HandlerFunc)
}

// pushObj serves PushObj (tars/Push.tars): pushByRoom, pushAll and pushToConn answer the
// connections reached here and on the peers that answered in time (Cluster.PushWait); peerPush,
// peerInterest and peerPresence come from the peers' hosts with cluster-secret as token.
type pushObj struct {
	s    registrar
	name string
	hub  *Hub
	live *live
	cl   *Cluster // nil: no cluster, peer calls are refused
}

// pushFunc serves one PushObj function: it puts the out-parameters after the return value 0, or
// returns an error answered with its code (codeErr).
type pushFunc func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) error

func registerPush(s registrar, name string, hub *Hub, l *live, cl *Cluster) {
	o := &pushObj{s, name, hub, l, cl}
	o.handle("pushByRoom", 0, o.pusher("roomNum", "message"))
	o.handle("pushAll", 0, o.pusher("message"))
	o.handle("pushToConn", 0, o.pusher("connId", "message"))
	o.handle("peerPush", 2, o.peerPush)
	o.handle("peerInterest", 1, o.peerInterest)
	o.handle("peerPresence", 1, o.peerPresence)
}

// handle registers fn. A call of another node (tokenTag > 0) is taken only from a peer's host with
// the cluster secret as its argument token at tokenTag, checked before anything else is read, and
// its refusals are logged.
func (o *pushObj) handle(fn string, tokenTag uint8, h pushFunc) {
	o.s.Handle(o.name, fn, func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		out.PutInt32(0, "", 0)
		var err error
		if tokenTag > 0 && (o.cl == nil || !o.cl.fromPeer(cur.RemoteAddr)) {
			err = codeErr{pushDenied, fmt.Errorf("%s: the caller is not on a peer's host", fn)}
		} else if tokenTag > 0 {
			err = peerToken(in, tokenTag, fn, o.live.get().ClusterSecret)
		}
		if err == nil {
			err = h(ctx, cur, in, out)
		}
		if err != nil && tokenTag > 0 {
			o.hub.log.Warn(fn+": call refused", "caller", cur.RemoteAddr.String(), "err", err)
		}
		if ce := (codeErr{}); errors.As(err, &ce) {
			return ce.code, err
		} else if err != nil {
			return tars.ServerUnknownErr, err
		}
		return tars.Success, nil
	})
}

// pusher serves a push function: its string arguments names from tag 1 make a message to roomNum,
// to connId or to all, checked after the push token; the out-parameter delivered follows them.
func (o *pushObj) pusher(names ...string) pushFunc {
	return func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) error {
		a, err := readStrings(in, 1, names...)
		if err != nil {
			return err
		}
		set := o.live.get()
		if !checkPushToken(set, cur.Context[pushTokenKey]) {
			return codeErr{pushDenied, fmt.Errorf("%s: missing or wrong push token (context key %q)", cur.Func, pushTokenKey)}
		}
		ev := event{Kind: kindMessage, From: fromTars, Time: time.Now()}
		for i, name := range names {
			switch name {
			case "roomNum":
				ev.Room, err = a[i], checkRoom(a[i], set)
			case "connId":
				if ev.To = a[i]; connTag(a[i]) == "" {
					err = errors.New("want a connection id c<N>.<tag>")
				}
			case "message":
				ev.Text, err = a[i], checkMessage(&a[i], set)
			}
			if err != nil {
				return codeErr{pushBadArgument, fmt.Errorf("%s: %s: %w", cur.Func, name, err)}
			}
		}
		var n int
		switch {
		case o.cl == nil:
			n, err = o.hub.Deliver(newFrames(ev), nil)
		case ev.To != "" && connTag(ev.To) == o.hub.idTag: // a connection of this node
			n, err = o.hub.DeliverLocal(newFrames(ev)).wait()
		default: // here and on the other nodes
			n, err = o.cl.PushWait(ctx, ev)
		}
		out.PutInt32(uint8(len(names)+1), "delivered", int32(n))
		return err
	}
}

// readStrings reads the string arguments names at tags from, from+1...
func readStrings(in *tars.Args, from uint8, names ...string) (a []string, err error) {
	a = make([]string, len(names))
	for i, name := range names {
		if a[i], err = in.String(from+uint8(i), name); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// peerPush delivers other nodes' messages here only, and answers each one's count (-1: refused).
func (o *pushObj) peerPush(_ context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) error {
	set := o.live.get()
	msgs, err := readPeerPush(in)
	if err != nil {
		return err
	}
	now := time.Now()
	items := make([]*logItem, len(msgs)) // delivered together: their writes share a sync
	var bad, retimed int
	var first error
	for i := range msgs {
		m := &msgs[i]
		moved, err := checkPeerMessage(m, *set, o.hub.idTag, now)
		if err != nil {
			if bad++; first == nil {
				first = fmt.Errorf("message %d (origin %q, room %q, from %q): %w", i, m.Origin, m.Room, m.From, err)
			}
			continue
		}
		retimed += boolInt(moved)
		ev := event{Kind: kindMessage, Room: m.Room, From: m.From, Name: m.Name, Text: m.Text, Time: time.UnixMilli(m.Time), To: m.To}
		items[i] = o.hub.DeliverLocal(newFrames(ev))
	}
	counts := make([]int32, len(msgs))
	for i, it := range items {
		counts[i] = -1
		if it != nil {
			if n, err := it.wait(); err == nil {
				counts[i] = int32(n)
			}
		}
	}
	if bad > 0 || retimed > 0 {
		o.hub.log.Warn("peerPush: messages refused or retimed", "caller", cur.RemoteAddr.String(),
			"messages", len(msgs), "refused", bad, "retimed", retimed, "first", first)
	}
	out.Put(3, "delivered", func(b []byte, tag uint8) []byte { return appendList(b, tag, counts, appendInt32) })
	return nil
}

// readPeerPush reads peerPush's messages, refusing more than a batch before any is allocated.
func readPeerPush(in *tars.Args) ([]peerMessage, error) {
	var msgs []peerMessage
	err := in.Value(1, "msgs", func(d *tars.Decoder, tag uint8) (err error) {
		msgs, err = readList(d, tag, peerBatchMax, readPeerMessage)
		return err
	})
	if errors.Is(err, errPeerBatch) {
		return nil, codeErr{pushBadArgument, fmt.Errorf("peerPush: msgs: %w", errPeerBatch)}
	}
	return msgs, err
}

// peerToken checks the cluster secret a peer call carries at tag; an empty secret matches nothing.
func peerToken(in *tars.Args, tag uint8, fn, secret string) error {
	token, err := in.String(tag, "token")
	if err == nil && (secret == "" || !sameToken(secret, token)) {
		err = codeErr{pushDenied, fmt.Errorf("%s: wrong cluster secret (argument token)", fn)}
	}
	return err
}

// sameToken reports whether got is want. Comparing fixed-size digests keeps the time independent
// of where, and whether in length, got differs.
func sameToken(want, got string) bool {
	w, g := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(w[:], g[:]) == 1
}

// checkPeerMessage reports what is wrong with a message from a peer: every field is bounded, and
// from is "http", "tars" or a connection id of another node (not ownTag). A time further than
// peerClockSkew from now (a skewed clock, or a long wait for its peer) is replaced by now: retimed.
func checkPeerMessage(m *peerMessage, set Settings, ownTag string, now time.Time) (retimed bool, err error) {
	switch tag := connTag(m.From); {
	case checkMessage(&m.Text, &set) != nil:
		return false, fmt.Errorf("text: %w", checkMessage(&m.Text, &set))
	case m.Room != "" && checkRoom(m.Room, &set) != nil:
		return false, fmt.Errorf("room: %w", checkRoom(m.Room, &set))
	case m.From != fromHTTP && m.From != fromTars && (tag == "" || tag == ownTag):
		return false, errors.New("from: want http, tars or a connection id of another node")
	case m.To != "" && (badID(m.To) || m.Room != ""):
		return false, errors.New("to: want a connection id, and no room")
	case m.Name != "" && checkName(m.Name) != nil:
		return false, fmt.Errorf("name: %w", checkName(m.Name))
	case len(m.Origin) > peerOriginMax:
		return false, fmt.Errorf("origin longer than %d bytes", peerOriginMax)
	}
	if d := now.Sub(time.UnixMilli(m.Time)); d > peerClockSkew || d < -peerClockSkew {
		m.Time = now.UnixMilli()
		return true, nil
	}
	return false, nil
}

// badID reports whether id is not a connection id of at most peerFromMax bytes.
func badID(id string) bool { return len(id) > peerFromMax || checkID(id) != nil }

// connTag returns the node tag of connection id id, or "" if id is not a connection id with one.
func connTag(id string) string {
	if _, tag, _ := strings.Cut(id, "."); !badID(id) {
		return tag
	}
	return ""
}

// codeErr is an error answered with a given return code.
type codeErr struct {
	code int32
	err  error
}

func (e codeErr) Error() string { return e.err.Error() }
func (e codeErr) Unwrap() error { return e.err }

// registerHello registers HelloObj (tars/hello.tars), string hello(int no, string name), under
// name. The answer names the caller and this server: "hello ann, no 3, from TestApp.WebsocketServer".
// The demo's HelloObj is a hook too (tars/Hook.tars): it refuses messages with demoWord in them.
func registerHello(s registrar, name, server string) {
	s.Handle(name, "hello", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		no, err := in.Int32(1, "no")
		who, err2 := in.String(2, "name")
		if err = cmp.Or(err, err2); err != nil {
			return 0, err
		}
		out.PutString(0, "", fmt.Sprintf("hello %s, no %d, from %s", who, no, server))
		return tars.Success, nil
	})
	for _, fn := range []string{"onSubscribe", "onPublish"} {
		s.Handle(name, fn, func(_ context.Context, _ *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
			ret, reason := hookAllow, ""
			if fn == "onPublish" {
				text, err := in.String(4, "text")
				if err != nil {
					return 0, err
				} else if strings.Contains(strings.ToLower(text), demoWord) {
					ret, reason = hookRefuse, fmt.Sprintf("the word %q is not allowed here", demoWord)
				}
			}
			out.PutInt32(0, "", ret)
			out.PutString(5, "reason", reason)
			if fn == "onPublish" {
				out.PutString(6, "replacement", "")
			}
			return tars.Success, nil
		})
	}
}

// helloCaller returns the hub's hello|NAME hook: it calls hello(no, name), numbering the calls
// from 1, on the servant named by proxy, or on this server's own HelloObj; nil if neither.
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
			func(a *tars.Args) (err error) {
				answer, err = a.String(0, "")
				return err
			})
		return answer, err
	}, nil
}

// registerCommands adds the WebSocket server's operator commands to AdminObj, and its lines to
// tars.viewstatus.
func registerCommands(app *tars.App, hub *Hub) {
	app.Command("ws.rooms", "", "lists the rooms with their member counts", func(context.Context, []string) string {
		rooms := hub.Counts().Rooms
		var b strings.Builder
		for _, room := range slices.Sorted(maps.Keys(rooms)) {
			fmt.Fprintf(&b, "%s %d\n", room, rooms[room])
		}
		return cmp.Or(b.String(), "no rooms")
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
		b, _ := json.Marshal(hub.Counts()) // ints and a map of them: cannot fail
		return string(b)
	})
	app.Status("websocket connections", func() any { return hub.Counts().Connections })
	app.Status("rooms", func() any { return len(hub.Counts().Rooms) })
}
