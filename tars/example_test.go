package tars_test

import (
	"errors"
	"fmt"

	"github.com/tarsws/websocketserver/tars"
)

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
