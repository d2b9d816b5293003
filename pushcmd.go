package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"

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
		if conf, err = tars.LoadConf(*config); err != nil {
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
	opt := tars.ClientOptions{SyncTimeout: sc.Client.SyncInvokeTimeout, MaxPacket: sc.MaxPacket}
	if sc.Client.Locator != "" {
		// A bare servant name is found through the config's registry.
		reg := &tars.Registry{Locator: sc.Client.Locator}
		defer reg.Close()
		opt.Resolver = reg
	}
	client := tars.NewClient(opt)
	defer client.Close()
	p, err := client.Proxy(*proxy)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if *tup {
		p = p.WithVersion(tars.VersionTUP)
	}
	if *token != "" {
		p = p.WithContext(map[string]string{pushTokenKey: *token})
	}
	n, err := callPush(ctx, p, *room, flags.Arg(0))
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
// count.
func callPush(ctx context.Context, p *tars.ObjProxy, room, text string) (int32, error) {
	fn, deliveredTag := "pushAll", uint8(2)
	if room != "" {
		fn, deliveredTag = "pushByRoom", 3
	}
	var n int32
	err := p.Invoke(ctx, fn,
		func(in *tars.Results) {
			if room != "" {
				in.PutString(1, "roomNum", room)
				in.PutString(2, "message", text)
			} else {
				in.PutString(1, "message", text)
			}
		},
		func(out *tars.Args) error {
			ret, err := out.Int32(0, "")
			if err != nil {
				return err
			}
			if ret != 0 {
				return fmt.Errorf("%s returned %d", fn, ret)
			}
			n, err = out.Int32(deliveredTag, "delivered")
			return err
		})
	return n, err
}
