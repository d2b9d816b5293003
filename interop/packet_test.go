package interop

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/TarsCloud/TarsGo/tars/protocol"
	"github.com/TarsCloud/TarsGo/tars/protocol/codec"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
	"github.com/TarsCloud/TarsGo/tars/protocol/tup"
	"github.com/TarsCloud/TarsGo/tars/util/tools"

	"github.com/tarsws/websocketserver/tars"
)

// goRequest converts our packet to TarsGo's, field by field.
func goRequest(p *tars.RequestPacket) *requestf.RequestPacket {
	return &requestf.RequestPacket{
		IVersion: p.Version, CPacketType: p.PacketType, IMessageType: p.MessageType,
		IRequestId: p.RequestID, SServantName: p.ServantName, SFuncName: p.FuncName,
		SBuffer: tools.ByteToInt8(p.Buffer), ITimeout: p.Timeout, Context: p.Context, Status: p.Status,
	}
}

func goResponse(p *tars.ResponsePacket) *requestf.ResponsePacket {
	return &requestf.ResponsePacket{
		IVersion: p.Version, CPacketType: p.PacketType, IRequestId: p.RequestID,
		IMessageType: p.MessageType, IRet: p.Ret, SBuffer: tools.ByteToInt8(p.Buffer),
		Status: p.Status, SResultDesc: p.ResultDesc, Context: p.Context,
	}
}

// normGo makes nil and empty fields of TarsGo's packets alike.
func normGoReq(p *requestf.RequestPacket) *requestf.RequestPacket {
	if len(p.SBuffer) == 0 {
		p.SBuffer = nil
	}
	p.Context, p.Status = orEmpty(p.Context), orEmpty(p.Status)
	return p
}

func normGoRsp(p *requestf.ResponsePacket) *requestf.ResponsePacket {
	if len(p.SBuffer) == 0 {
		p.SBuffer = nil
	}
	p.Context, p.Status = orEmpty(p.Context), orEmpty(p.Status)
	return p
}

// orEmpty makes nil maps and slices empty ones, as TarsGo's decoder
// returns them, so packets compare with reflect.DeepEqual.
func orEmpty[M ~map[string]string](m M) M {
	if m == nil {
		return M{}
	}
	return m
}

func requestCases() map[string]tars.RequestPacket {
	return map[string]tars.RequestPacket{
		"push": {Version: tars.VersionTars, RequestID: 1, ServantName: "TestApp.WebsocketServer.PushObj",
			FuncName: "pushByRoom", Buffer: bytes.Repeat([]byte{0x5a}, 100), Timeout: 3000,
			Context: map[string]string{"k": "v"}, Status: map[string]string{}},
		"admin": {Version: tars.VersionTars, RequestID: 1, ServantName: "AdminObj", FuncName: "notify",
			Buffer: tars.AppendString(nil, 1, "tars.viewversion"), Timeout: 3000,
			Context: map[string]string{}, Status: map[string]string{}},
		"oneway-tup-big": {Version: tars.VersionTUP, PacketType: tars.PacketOneway, MessageType: 0x104,
			RequestID: -2147483648, ServantName: strings.Repeat("S", 256), FuncName: "f",
			Buffer: bytes.Repeat([]byte{1}, 70000), Timeout: 2147483647,
			Context: map[string]string{}, Status: map[string]string{"STATUS_DYED_KEY": "u1"}},
		"empty-buffer": {Version: tars.VersionTars, RequestID: 7, ServantName: "A.B.C", FuncName: "tars_ping",
			Buffer: []byte{}, Context: map[string]string{}, Status: map[string]string{}},
	}
}

func TestRequestPacket(t *testing.T) {
	for name, want := range requestCases() {
		t.Run(name, func(t *testing.T) {
			// Framed, exactly as each side puts it on the wire.
			goFrame, err := (&protocol.TarsProtocol{}).RequestPack(goRequest(&want))
			must(t, err)
			ourFrame := want.AppendFrame(nil)
			if !bytes.Equal(goFrame, ourFrame) {
				t.Errorf("frames differ\nTarsGo: %x\nours:   %x", goFrame, ourFrame)
			}

			fr := tars.FrameReader{R: bufio.NewReader(bytes.NewReader(goFrame))}
			body, err := fr.Next()
			must(t, err)
			var got tars.RequestPacket
			must(t, got.Decode(body))
			got.Context, got.Status = orEmpty(got.Context), orEmpty(got.Status)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ours decoding TarsGo's: %+v\nwant %+v", got, want)
			}

			var goGot requestf.RequestPacket
			must(t, goGot.ReadFrom(codec.NewReader(ourFrame[4:])))
			if !reflect.DeepEqual(normGoReq(&goGot), normGoReq(goRequest(&want))) {
				t.Errorf("TarsGo decoding ours: %+v", goGot)
			}
		})
	}
}

// TestRequestPacketManyContext: with several pairs TarsGo's map order, and so
// its bytes, vary; the packets must still read back equal.
func TestRequestPacketManyContext(t *testing.T) {
	want := requestCases()["push"]
	want.Context = map[string]string{"a": "1", "b": "2", "traceid": strings.Repeat("t", 300)}
	want.Status = map[string]string{"x": "", "y": "z"}
	for range 5 {
		goFrame, err := (&protocol.TarsProtocol{}).RequestPack(goRequest(&want))
		must(t, err)
		var got tars.RequestPacket
		must(t, got.Decode(goFrame[4:]))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ours decoding TarsGo's: %+v", got)
		}
	}
	var goGot requestf.RequestPacket
	must(t, goGot.ReadFrom(codec.NewReader(want.Append(nil))))
	if !reflect.DeepEqual(&goGot, goRequest(&want)) {
		t.Errorf("TarsGo decoding ours: %+v", goGot)
	}
}

func TestResponsePacket(t *testing.T) {
	cases := map[string]tars.ResponsePacket{
		"viewversion": {Version: tars.VersionTars, RequestID: 1, Buffer: tars.AppendString(nil, 0, "1.4.5"),
			Status: map[string]string{}},
		"error": {Version: tars.VersionTars, RequestID: 99, Ret: tars.ServerNoFuncErr, Buffer: []byte{},
			Status: map[string]string{}, ResultDesc: "no such function: nope"},
		"context": {Version: tars.VersionTars, PacketType: 0, RequestID: 70000, MessageType: 0x4,
			Ret: tars.ServerUnknownErr, Buffer: bytes.Repeat([]byte{3}, 300),
			Status: map[string]string{"s": "1"}, ResultDesc: strings.Repeat("e", 256), Context: map[string]string{"c": "2"}},
		"push-reconnect": {Version: tars.VersionTars, RequestID: 0, Buffer: []byte{}, Status: map[string]string{},
			ResultDesc: "_reconnect_"},
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			gb := codec.NewBuffer()
			must(t, goResponse(&want).WriteTo(gb))
			ours := want.Append(nil)
			if !bytes.Equal(gb.ToBytes(), ours) {
				t.Errorf("bytes differ\nTarsGo: %x\nours:   %x", gb.ToBytes(), ours)
			}
			var got tars.ResponsePacket
			must(t, got.Decode(gb.ToBytes()))
			got.Status = orEmpty(got.Status)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ours decoding TarsGo's: %+v", got)
			}
			goGot, err := (&protocol.TarsProtocol{}).ResponseUnpack(want.AppendFrame(nil))
			must(t, err)
			if !reflect.DeepEqual(normGoRsp(goGot), normGoRsp(goResponse(&want))) {
				t.Errorf("TarsGo decoding ours: %+v", goGot)
			}
		})
	}
}

// TestTUPArguments: the argument map of a TUP call, one key (TarsGo's map
// order makes more keys vary) and several.
func TestTUPArguments(t *testing.T) {
	value := func(write func(*codec.Buffer) error) []byte {
		b := codec.NewBuffer()
		must(t, write(b))
		return b.ToBytes()
	}
	one := tup.NewUniAttribute()
	one.PutBuffer("command", value(func(b *codec.Buffer) error { return b.WriteString("tars.viewversion", 0) }))
	gb := codec.NewBuffer()
	must(t, one.Encode(gb))
	ours := tars.AppendTUP(nil, map[string][]byte{"command": tars.AppendString(nil, 0, "tars.viewversion")})
	if !bytes.Equal(gb.ToBytes(), ours) {
		t.Errorf("bytes differ\nTarsGo: %x\nours:   %x", gb.ToBytes(), ours)
	}

	many := tup.NewUniAttribute()
	many.PutBuffer("roomNum", value(func(b *codec.Buffer) error { return b.WriteString("room1", 0) }))
	many.PutBuffer("message", value(func(b *codec.Buffer) error { return b.WriteString(strings.Repeat("m", 300), 0) }))
	many.PutBuffer("delivered", value(func(b *codec.Buffer) error { return b.WriteInt32(0, 0) }))
	gb = codec.NewBuffer()
	must(t, many.Encode(gb))
	a, err := tars.NewArgs(tars.VersionTUP, gb.ToBytes())
	must(t, err)
	room, err := a.String(1, "roomNum")
	must(t, err)
	msg, err := a.String(2, "message")
	must(t, err)
	delivered, err := a.Int32(3, "delivered")
	must(t, err)
	if room != "room1" || msg != strings.Repeat("m", 300) || delivered != 0 {
		t.Errorf("ours read %q %q %d", room, msg, delivered)
	}

	reply := tars.AppendTUP(nil, map[string][]byte{
		"":          tars.AppendInt(nil, 0, 0),
		"tars_ret":  tars.AppendInt(nil, 0, 0),
		"delivered": tars.AppendInt(nil, 0, 3),
	})
	back := tup.NewUniAttribute()
	must(t, back.Decode(codec.NewReader(reply)))
	var ret, n int32
	for name, v := range map[string]*int32{"tars_ret": &ret, "delivered": &n} {
		var p []byte
		must(t, back.GetBuffer(name, &p))
		must(t, codec.NewReader(p).ReadInt32(v, 0, true))
	}
	if ret != 0 || n != 3 {
		t.Errorf("TarsGo read tars_ret %d delivered %d, want 0 3", ret, n)
	}
}

// TestTUPReplyLayout: a TUP reply is a RequestPacket; TarsGo's generated
// RequestPacket reads ours, code in status included.
func TestTUPReplyLayout(t *testing.T) {
	req := tars.RequestPacket{Version: tars.VersionTUP, RequestID: 12, ServantName: "TestApp.WebsocketServer.PushObj",
		FuncName: "pushAll", Context: map[string]string{}, Status: map[string]string{}}
	rsp := tars.TUPReply(&req, tars.ServerNoFuncErr, "no such function", nil)
	var goGot requestf.RequestPacket
	must(t, goGot.ReadFrom(codec.NewReader(rsp.Append(nil))))
	if goGot.IVersion != 3 || goGot.IRequestId != 12 || goGot.SServantName != req.ServantName ||
		goGot.SFuncName != "pushAll" || goGot.Status["STATUS_RESULT_CODE"] != "-3" {
		t.Errorf("TarsGo read %+v", goGot)
	}
}

// The benchmarks encode and decode one RequestPacket with each codec:
// a pushByRoom call with a 100-byte sBuffer and context {"k":"v"}.

func benchRequest() tars.RequestPacket { return requestCases()["push"] }

func BenchmarkTarsGoEncodeRequest(b *testing.B) {
	req := goRequest(new(benchRequest()))
	p := &protocol.TarsProtocol{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.RequestPack(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOurEncodeRequest(b *testing.B) {
	req := benchRequest()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = req.AppendFrame(buf[:0])
	}
}

func BenchmarkTarsGoDecodeRequest(b *testing.B) {
	req := benchRequest()
	body := req.Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		var p requestf.RequestPacket
		if err := p.ReadFrom(codec.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOurDecodeRequest(b *testing.B) {
	req := benchRequest()
	body := req.Append(nil)
	b.ReportAllocs()
	var p tars.RequestPacket
	for b.Loop() {
		if err := p.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
