package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/tarsws/websocketserver/tars"
)

// The gateway: call| (README.md) has a browser call the application's Tars servants over its
// connection, with the JSON packet version: args are the in-parameters by name, as TarsGo's
// servants read them without IDL. The answer is one json frame; code is the Tars return code of a
// failed call, or a call* code for one refused here. The request context carries the caller's
// connection id under ctxConn, so the servant knows whom to push to (PushObj.pushToConn).
const (
	cmdCall = "call"
	ctxConn = "ws.conn"
	ctxName = "ws.name" // the display name, when the connection set one

	callBadRequest int32 = 1  // malformed frame, arguments over call-max-args, result too large
	callDenied     int32 = 2  // servant or function not in call-allow
	callBusy       int32 = 3  // call-concurrency calls of this connection already in flight
	maxCallID            = 64 // bytes of the id, a JSON number or string echoed back
)

type callAnswer struct {
	Kind   string          `json:"kind"`
	ID     json.RawMessage `json:"id,omitempty"`
	Ret    json.RawMessage `json:"ret,omitempty"`
	Result any             `json:"result,omitempty"`
	Code   int32           `json:"code,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// gateway holds one proxy per servant called (call| and the hook), on the process's one client.
type gateway struct {
	client  *tars.Client
	local   func(servant string) (tars.Endpoint, bool) // a servant this process serves, on its adapter
	mu      sync.Mutex
	proxies map[string]*tars.ObjProxy
}

func (g *gateway) proxy(servant string) (*tars.ObjProxy, error) {
	if g == nil {
		return nil, errors.New("no Tars client")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.proxies[servant]; p != nil {
		return p, nil
	}
	name := servant
	if e, ok := g.local(servant); ok {
		name += "@" + e.String()
	}
	p, err := g.client.Proxy(name)
	if err == nil {
		g.proxies[servant] = p
	}
	return p, err
}

// call checks one call frame's data and calls on a goroutine of its own, so the reader goes on.
func (c *conn) call(data string, s *Settings) {
	var req struct {
		ID, Args      json.RawMessage
		Servant, Func string
	}
	var args map[string]json.RawMessage
	fail := func(code int32, err error) {
		c.enqueue(encodeAnswer(callAnswer{Kind: kindError, ID: req.ID, Code: code, Error: err.Error()}))
	}
	code, err := callBadRequest, json.Unmarshal([]byte(data), &req)
	switch {
	case err != nil:
		req.ID, err = nil, fmt.Errorf("call: bad JSON: %v", err)
	case len(req.ID) > maxCallID || len(req.ID) > 0 && !strings.ContainsRune(`"-0123456789`, rune(req.ID[0])):
		req.ID, err = nil, fmt.Errorf("call: id must be a number or a string of at most %d bytes", maxCallID)
	case req.Servant == "" || req.Func == "":
		err = errors.New("call: servant and func required")
	case !callAllowed(s.CallAllow, req.Servant, req.Func):
		code, err = callDenied, fmt.Errorf("call: %s.%s is not allowed (call-allow)", req.Servant, req.Func)
	case len(req.Args) > s.CallMaxArgs:
		err = fmt.Errorf("call: args longer than %d bytes", s.CallMaxArgs)
	case len(req.Args) > 0 && string(req.Args) != "null" && (req.Args[0] != '{' || json.Unmarshal(req.Args, &args) != nil):
		err = errors.New("call: args must be an object of parameters by name")
	}
	if err != nil {
		fail(code, err)
		return
	}
	p, err := c.hub.gw.proxy(req.Servant)
	if err != nil {
		fail(tars.ProxyConnectErr, fmt.Errorf("call: %w", err))
		return
	}
	if n := c.calls.Add(1); int(n) > s.CallConcurrency {
		c.calls.Add(-1)
		fail(callBusy, fmt.Errorf("call: %d calls already in flight (call-concurrency)", s.CallConcurrency))
		return
	}
	ctx := map[string]string{ctxConn: c.id}
	if name := c.displayName(); name != "" {
		ctx[ctxName] = name
	}
	p, limit := p.WithVersion(tars.VersionJSON).WithContext(ctx), s.QueueBytes/2
	go func() {
		defer c.calls.Add(-1)
		out := map[string]json.RawMessage{}
		// The client's timeout (sync-invoke-timeout) bounds the call; its errors are *tars.CallError.
		err := p.Invoke(context.Background(), req.Func,
			func(r *tars.Results) {
				for name, v := range args {
					r.PutJSON(0, name, v)
				}
			},
			func(a *tars.Args) error { maps.Copy(out, a.JSONObject()); return nil })
		if ce := (*tars.CallError)(nil); errors.As(err, &ce) {
			fail(ce.Code, ce)
			return
		}
		ret := out["tars_ret"]
		delete(out, "tars_ret")
		if b := encodeAnswer(callAnswer{Kind: "result", ID: req.ID, Ret: ret, Result: out}); len(b) > limit {
			fail(callBadRequest, fmt.Errorf("call: result of %d bytes does not fit the connection's queue", len(b)))
		} else {
			c.enqueue(b)
		}
	}()
}

func encodeAnswer(a callAnswer) []byte {
	b, err := marshalJSON(a)
	if err != nil { // a servant's reply that is not JSON
		return encodeAnswer(callAnswer{Kind: kindError, ID: a.ID, Code: tars.ClientDecodeErr, Error: "call: " + err.Error()})
	}
	return b
}

// callAllow reads call-allow ("App.Server.Obj:fn1,fn2;Other.Server.Obj:*") into functions by servant.
func callAllow(spec string) (map[string][]string, error) {
	allow := map[string][]string{}
	if strings.TrimSpace(spec) == "" {
		return allow, nil
	}
	for entry := range strings.SplitSeq(spec, ";") {
		name, fns, ok := strings.Cut(entry, ":")
		name = strings.TrimSpace(name)
		if parts := strings.Split(name, "."); !ok || len(parts) != 3 || slices.Contains(parts, "") || strings.ContainsAny(name, "@ \t") {
			return nil, fmt.Errorf("entry %q is not a servant name, a colon and functions", entry)
		}
		for f := range strings.SplitSeq(fns, ",") {
			if f = strings.TrimSpace(f); f == "" || strings.ContainsAny(f, " \t") {
				return nil, fmt.Errorf("entry %q has an empty or bad function name", entry)
			}
			allow[name] = append(allow[name], f)
		}
	}
	return allow, nil
}

// callAllowed reports whether spec, a valid call-allow, allows servant's fn.
func callAllowed(spec, servant, fn string) bool {
	allow, _ := callAllow(spec)
	return fn != "" && (slices.Contains(allow[servant], fn) || slices.Contains(allow[servant], "*"))
}

// connsByID returns the connection with id, if it is on this node, as a member set. h.mu held.
func (h *Hub) connsByID(id string) map[*conn]uint64 {
	if connTag(id) != h.idTag {
		return nil
	}
	for c, seq := range h.conns {
		if c.id == id {
			return map[*conn]uint64{c: seq}
		}
	}
	return nil
}
