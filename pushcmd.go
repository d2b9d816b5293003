package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

func init() { subcommands["push"] = runPush }

const pushUsage = `usage: websocketserver push [-config FILE] [-proxy PROXY] [-room ROOM | -all] [-token T] [-tup] TEXT

Pushes TEXT to a room (PushObj.pushByRoom) or to every connection
(PushObj.pushAll) over Tars RPC and prints "delivered N": how many
connections the message was queued for. The default proxy is the PushObj
adapter of the config (-config, or the embedded default.conf).

`

// runPush is the push subcommand.
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("push", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, pushUsage)
		flags.PrintDefaults()
	}
	config := flags.String("config", "", "the server's config file (default: the embedded default.conf)")
	proxy := flags.String("proxy", "", "PushObj's proxy string, App.Server.PushObj@tcp -h HOST -p PORT (default: from the config)")
	room := flags.String("room", "", "the room to push to")
	all := flags.Bool("all", false, "push to every connection")
	token := flags.String("token", "", "the push token, when the server has push-token set")
	tup := flags.Bool("tup", false, "call in the TUP layout (version 3) rather than TARS (version 1)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{}
	}
	switch {
	case flags.NArg() == 0:
		return usageError{"push: no TEXT to push"}
	case flags.NArg() > 1:
		return usageError{fmt.Sprintf("push: unexpected argument %q (quote TEXT if it has spaces)", flags.Arg(1))}
	case *all == (*room != ""):
		return usageError{"push: want exactly one of -room ROOM and -all"}
	case flags.Arg(0) == "":
		return usageError{"push: empty TEXT"}
	}

	conf, name := DefaultConf(), "default.conf (embedded)"
	if *config != "" {
		var err error
		if conf, err = LoadConf(*config); err != nil {
			return err
		}
		name = *config
	}
	sc, err := LoadServerConfig(conf)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if *proxy == "" {
		if *proxy, err = pushProxy(sc); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	p, err := tars.ParseProxy(*proxy)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if len(p.Endpoints) == 0 {
		return fmt.Errorf("push: proxy %q has no endpoints (want NAME@tcp -h HOST -p PORT)", *proxy)
	}

	version := tars.VersionTars
	if *tup {
		version = tars.VersionTUP
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Client.SyncInvokeTimeout)
	defer cancel()
	n, err := callPush(ctx, p, version, *token, *room, flags.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "delivered %d\n", n)
	return nil
}

// pushProxy returns the proxy string of the config's own PushObj, reached
// on this machine when it listens on every interface.
func pushProxy(sc *ServerConfig) (string, error) {
	name := servantName(sc, "PushObj")
	ad, ok := sc.AdapterFor(name)
	if !ok {
		return "", fmt.Errorf("no adapter serves %s; give -proxy", name)
	}
	e := ad.Endpoint
	if ip, err := netip.ParseAddr(e.Host); e.Host == "*" || err == nil && ip.IsUnspecified() {
		e.Host = "127.0.0.1"
	}
	return name + "@" + e.String(), nil
}

// callPush calls pushByRoom (room set) or pushAll and returns the delivered
// count. It writes the request itself because the push token travels in
// the request's context map, which tars.Client does not send. Endpoints are
// tried in order until one accepts the connection; a request once sent is
// never sent again, as a push is not idempotent.
func callPush(ctx context.Context, p tars.Proxy, version int16, token, room, text string) (int32, error) {
	fn, deliveredTag := "pushAll", uint8(2)
	in := tars.NewResults(version)
	if room != "" {
		fn, deliveredTag = "pushByRoom", 3
		in.PutString(1, "roomNum", room)
		in.PutString(2, "message", text)
	} else {
		in.PutString(1, "message", text)
	}
	buf, err := in.AppendTo(nil)
	if err != nil {
		return 0, fmt.Errorf("push: encode the arguments: %w", err)
	}
	req := tars.RequestPacket{Version: version, RequestID: 1, ServantName: p.Name, FuncName: fn, Buffer: buf}
	if d, ok := ctx.Deadline(); ok {
		req.Timeout = int32(max(time.Until(d).Milliseconds(), 1))
	}
	if token != "" {
		req.Context = map[string]string{pushTokenKey: token}
	}

	var conn net.Conn
	var dialErrs []error
	for _, e := range p.Endpoints {
		var d net.Dialer
		if conn, err = d.DialContext(ctx, "tcp", e.Addr()); err == nil {
			break
		}
		dialErrs = append(dialErrs, err)
	}
	if conn == nil {
		return 0, fmt.Errorf("push: cannot connect to %s: %w", p.Name, errors.Join(dialErrs...))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	fail := func(err error) (int32, error) {
		if ctx.Err() != nil {
			err = fmt.Errorf("no reply in time (%w)", ctx.Err())
		}
		return 0, fmt.Errorf("push: %s.%s at %s: %w", p.Name, fn, conn.RemoteAddr(), err)
	}
	if _, err := conn.Write(req.AppendFrame(nil)); err != nil {
		return fail(err)
	}
	fr := tars.FrameReader{R: bufio.NewReader(conn)}
	for {
		body, err := fr.Next()
		if err != nil {
			return fail(err)
		}
		rep, err := decodePushReply(body)
		if err != nil {
			return fail(fmt.Errorf("bad reply: %w", err))
		}
		if rep.id != req.RequestID {
			continue // a push from the server, not our reply
		}
		if rep.ret != tars.Success {
			return 0, &tars.CallError{Code: rep.ret, Desc: rep.desc, Servant: p.Name, Func: fn}
		}
		out, err := tars.NewArgs(rep.version, rep.buf)
		if err != nil {
			return fail(fmt.Errorf("bad reply: %w", err))
		}
		if r, err := out.Int32(0, ""); err != nil {
			return fail(fmt.Errorf("bad reply: %w", err))
		} else if r != 0 {
			return fail(fmt.Errorf("returned %d", r))
		}
		n, err := out.Int32(deliveredTag, "delivered")
		if err != nil {
			return fail(fmt.Errorf("bad reply: %w", err))
		}
		return n, nil
	}
}

// pushReply is a decoded reply packet.
type pushReply struct {
	id      int32
	version int16
	ret     int32
	desc    string
	buf     []byte
}

// decodePushReply reads a reply: a ResponsePacket, or in the TUP layout a
// RequestPacket with the return code in its status.
func decodePushReply(body []byte) (r pushReply, err error) {
	d := tars.NewDecoder(body)
	if err := d.ReadInt16(&r.version, 1, true); err != nil {
		return r, err
	}
	if r.version == tars.VersionTUP {
		var p tars.RequestPacket
		if err := p.Decode(body); err != nil {
			return r, err
		}
		r.id, r.buf = p.RequestID, p.Buffer
		r.ret, r.desc, err = tars.TUPResult(&p)
		return r, err
	}
	var p tars.ResponsePacket
	if err := p.Decode(body); err != nil {
		return r, err
	}
	r.id, r.ret, r.desc, r.buf = p.RequestID, p.Ret, p.ResultDesc, p.Buffer
	return r, nil
}
