package tars_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/tarsws/websocketserver/tars"
)

// A Tars server with one servant implementing string hello(int no,
// string name), and a client calling it in TARS and in TUP.
func Example() {
	var s tars.Server
	s.Handle("TestApp.HelloServer.HelloObj", "hello", func(ctx context.Context, cur *tars.Current, in *tars.Args, out *tars.Results) (int32, error) {
		no, err := in.Int32(1, "no")
		if err != nil {
			return 0, err
		}
		name, err := in.String(2, "name")
		if err != nil {
			return 0, err
		}
		out.PutString(0, "", fmt.Sprintf("hello %s #%d", name, no)) // the return value
		return tars.Success, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go s.Serve(ln, tars.ListenOptions{})
	defer s.Shutdown(context.Background())

	c := tars.NewClient(tars.ClientOptions{})
	defer c.Close()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, err := c.Proxy("TestApp.HelloServer.HelloObj@tcp -h " + host + " -p " + port + " -t 3000")
	if err != nil {
		panic(err)
	}
	for _, proxy := range []*tars.ObjProxy{p, p.WithVersion(tars.VersionTUP)} {
		var greeting string
		err := proxy.Invoke(context.Background(), "hello",
			func(in *tars.Results) {
				in.PutInt32(1, "no", 7)
				in.PutString(2, "name", "tars")
			},
			func(out *tars.Args) (err error) {
				greeting, err = out.String(0, "")
				return err
			})
		fmt.Println(greeting, err)
	}
	// Output:
	// hello tars #7 <nil>
	// hello tars #7 <nil>
}

// The arguments of int f(string a, out int b) in a version 1 request:
// parameter i at tag i.
func ExampleDecoder() {
	var args []byte
	args = tars.AppendString(args, 1, "hello")
	args = tars.AppendInt(args, 2, 0)
	fmt.Printf("% X\n", args)

	d := tars.NewDecoder(args)
	var a string
	b := int32(-1)
	err := errors.Join(d.ReadString(&a, 1, true), d.ReadInt32(&b, 2, false))
	fmt.Println(a, b, err)
	// Output:
	// 16 05 68 65 6C 6C 6F 2C
	// hello 0 <nil>
}

// A struct {0 string application; 1 string serverName; 2 int pid;
// 3 optional string adapter} at tag 1, written by a peer that knows a field
// more (tag 4). The reader keeps the default of the absent optional field
// and skips the unknown one.
func ExampleDecoder_ReadStructBegin() {
	var b []byte
	b = tars.AppendStructBegin(b, 1)
	b = tars.AppendString(b, 0, "TestApp")
	b = tars.AppendString(b, 1, "WebsocketServer")
	b = tars.AppendInt(b, 2, 4242)
	b = tars.AppendString(b, 4, "from a newer peer")
	b = tars.AppendStructEnd(b)

	var app, server string
	var pid int32
	adapter := "(none)"
	d := tars.NewDecoder(b)
	if _, err := d.ReadStructBegin(1, true); err != nil {
		fmt.Println(err)
		return
	}
	err := errors.Join(
		d.ReadString(&app, 0, true),
		d.ReadString(&server, 1, true),
		d.ReadInt32(&pid, 2, true),
		d.ReadString(&adapter, 3, false),
		d.ReadStructEnd(),
	)
	fmt.Println(app, server, pid, adapter, err, d.Offset() == len(b))
	// Output: TestApp WebsocketServer 4242 (none) <nil> true
}
