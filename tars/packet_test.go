package tars

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"testing"
)

// unhex decodes hex written with spaces and "quoted" ASCII runs, the way
// the protocol notes print packets.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for i, part := range strings.Split(s, `"`) {
		if i%2 == 1 {
			out = append(out, part...)
			continue
		}
		clean := strings.NewReplacer(" ", "", "\n", "", "|", "", "[", "", "]", "").Replace(part)
		b, err := hex.DecodeString(clean)
		if err != nil {
			t.Fatalf("bad hex %q: %v", part, err)
		}
		out = append(out, b...)
	}
	return out
}

// The verified AdminObj notify request of the protocol notes.
const verifiedRequest = `00 00 00 39 | 10 01 | 2C | 3C | 40 01 | 56 08 "AdminObj" | 66 06 "notify" |
7D 00 00 12 [16 10 "tars.viewversion"] | 81 0B B8 | 98 0C | A8 0C`

// The verified response to it, returning "1.4.5".
const verifiedResponse = `00 00 00 18 | 10 01 | 2C | 30 01 | 4C | 5C | 6D 00 00 07 [06 05 "1.4.5"] | 78 0C`

func TestVerifiedRequest(t *testing.T) {
	want := unhex(t, verifiedRequest)
	p := RequestPacket{Version: VersionTars, RequestID: 1, ServantName: "AdminObj", FuncName: "notify",
		Buffer: AppendString(nil, 1, "tars.viewversion"), Timeout: 3000}
	if got := p.AppendFrame(nil); !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame:\n got %x\nwant %x", got, want)
	}
	var q RequestPacket
	if err := q.Decode(want[4:]); err != nil {
		t.Fatal(err)
	}
	if q.Version != 1 || q.RequestID != 1 || q.ServantName != "AdminObj" || q.FuncName != "notify" ||
		q.Timeout != 3000 || !bytes.Equal(q.Buffer, p.Buffer) || len(q.Context) != 0 || len(q.Status) != 0 {
		t.Fatalf("Decode: %+v", q)
	}
}

func TestVerifiedResponse(t *testing.T) {
	want := unhex(t, verifiedResponse)
	p := ResponsePacket{Version: VersionTars, RequestID: 1, Buffer: AppendString(nil, 0, "1.4.5")}
	if got := p.AppendFrame(nil); !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame:\n got %x\nwant %x", got, want)
	}
	q := ResponsePacket{ResultDesc: "stale"}
	if err := q.Decode(want[4:]); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := NewDecoder(q.Buffer).ReadString(&s, 0, true); err != nil || s != "1.4.5" {
		t.Fatalf("result %q, %v", s, err)
	}
	if q.Version != 1 || q.RequestID != 1 || q.Ret != 0 || q.ResultDesc != "" || q.Context != nil {
		t.Fatalf("Decode: %+v", q)
	}
}

func fullRequest() RequestPacket {
	return RequestPacket{Version: VersionTUP, PacketType: PacketOneway, MessageType: 0x10, RequestID: -7,
		ServantName: "TestApp.WebsocketServer.PushObj", FuncName: "pushByRoom", Buffer: bytes.Repeat([]byte{0xAB}, 300),
		Timeout: 60000, Context: map[string]string{"trace": "1", "user": "u"}, Status: map[string]string{"s": strings.Repeat("v", 256)}}
}

func fullResponse() ResponsePacket {
	return ResponsePacket{Version: VersionTars, PacketType: 0, RequestID: 1 << 30, MessageType: 0x4,
		Ret: ServerUnknownErr, Buffer: []byte{1, 2, 3}, Status: map[string]string{"a": "b"},
		ResultDesc: "boom", Context: map[string]string{"c": "d"}}
}

func TestRequestRoundTrip(t *testing.T) {
	p := fullRequest()
	var q RequestPacket
	if err := q.Decode(p.Append(nil)); err != nil {
		t.Fatal(err)
	}
	if q.Version != p.Version || q.PacketType != p.PacketType || q.MessageType != p.MessageType ||
		q.RequestID != p.RequestID || q.ServantName != p.ServantName || q.FuncName != p.FuncName ||
		!bytes.Equal(q.Buffer, p.Buffer) || q.Timeout != p.Timeout || !maps.Equal(q.Context, p.Context) ||
		!maps.Equal(q.Status, p.Status) {
		t.Fatalf("got %+v", q)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	p := fullResponse()
	q := ResponsePacket{ResultDesc: "left over", Context: map[string]string{"x": "y"}}
	if err := q.Decode(p.Append(nil)); err != nil {
		t.Fatal(err)
	}
	if q.Version != p.Version || q.PacketType != p.PacketType || q.RequestID != p.RequestID ||
		q.MessageType != p.MessageType || q.Ret != p.Ret || !bytes.Equal(q.Buffer, p.Buffer) ||
		!maps.Equal(q.Status, p.Status) || q.ResultDesc != p.ResultDesc || !maps.Equal(q.Context, p.Context) {
		t.Fatalf("got %+v", q)
	}
	// Without the optional fields, Decode leaves them empty, not as they were.
	p.ResultDesc, p.Context = "", nil
	if err := q.Decode(p.Append(nil)); err != nil || q.ResultDesc != "" || q.Context != nil {
		t.Fatalf("got %+v, %v", q, err)
	}
}

// TestTruncatedPackets cuts valid packets at every byte: each cut is an
// error, except where the rest holds only optional response fields.
func TestTruncatedPackets(t *testing.T) {
	req := fullRequest()
	body := req.Append(nil)
	for i := range len(body) {
		var q RequestPacket
		if err := q.Decode(body[:i]); err == nil {
			t.Fatalf("request cut at %d of %d: no error", i, len(body))
		}
	}
	rsp := fullResponse()
	body = rsp.Append(nil)
	bare := rsp
	bare.ResultDesc, bare.Context = "", nil
	withDesc := bare
	withDesc.ResultDesc = rsp.ResultDesc
	complete := map[int]bool{len(bare.Append(nil)): true, len(withDesc.Append(nil)): true}
	for i := range len(body) {
		var q ResponsePacket
		err := q.Decode(body[:i])
		if complete[i] != (err == nil) {
			t.Fatalf("response cut at %d of %d: error %v", i, len(body), err)
		}
	}
}

func TestPacketMissingField(t *testing.T) {
	// A request without its status map (tag 10).
	p := fullRequest()
	b := p.Append(nil)
	cut := bytes.LastIndex(b, []byte{0xA8}) // the head of tag 10, a MAP
	var q RequestPacket
	err := q.Decode(b[:cut])
	var de *DecodeError
	if !errors.As(err, &de) || de.Tag != 10 || !strings.Contains(err.Error(), "required field missing") {
		t.Fatalf("got %v", err)
	}
	// A request whose request id is a long.
	b = AppendInt(nil, 1, 1)
	b = AppendInt(b, 2, 0)
	b = AppendInt(b, 3, 0)
	b = AppendInt(b, 4, 1<<40)
	if err := q.Decode(b); err == nil || !strings.Contains(err.Error(), "tag 4") || !strings.Contains(err.Error(), "INT8 cannot be read as int32") {
		t.Fatalf("got %v", err)
	}
}

// TestPacketUnknownFields: fields a newer peer adds after the known ones are ignored.
func TestPacketUnknownFields(t *testing.T) {
	p := fullResponse()
	b := AppendString(p.Append(nil), 12, "future")
	var q ResponsePacket
	if err := q.Decode(b); err != nil || q.ResultDesc != "boom" {
		t.Fatalf("got %+v, %v", q, err)
	}
}

// TestRequestNamesOwnTheirBytes: the servant and function names survive the
// reuse of the body they were read from, short names (cached) and long ones.
func TestRequestNamesOwnTheirBytes(t *testing.T) {
	for _, servant := range []string{"App.Server.Obj", strings.Repeat("S", maxName+1)} {
		p := fullRequest()
		p.ServantName = servant
		body := p.Append(nil)
		var q RequestPacket
		if err := q.Decode(body); err != nil {
			t.Fatal(err)
		}
		clear(body)
		if q.ServantName != servant || q.FuncName != p.FuncName {
			t.Fatalf("after clearing the body: servant %q, func %q", q.ServantName, q.FuncName)
		}
	}
}

// TestRequestNamesConcurrent decodes many distinct names, from several
// goroutines at once: each packet reads back its own names.
func TestRequestNamesConcurrent(t *testing.T) {
	const workers, each = 4, 500
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var err error
			for i := range each {
				p := RequestPacket{ServantName: fmt.Sprintf("App.S%d.Obj", i%300), FuncName: fmt.Sprintf("f%d_%d", w, i)}
				var q RequestPacket
				if err = q.Decode(p.Append(nil)); err == nil && (q.ServantName != p.ServantName || q.FuncName != p.FuncName) {
					err = fmt.Errorf("sent %q %q, read %q %q", p.ServantName, p.FuncName, q.ServantName, q.FuncName)
				}
				if err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestDecodeRequestAllocs: once its names are known, a request without
// context or status decodes without allocating.
func TestDecodeRequestAllocs(t *testing.T) {
	p := benchRequest()
	p.Context = nil
	body := p.Append(nil)
	var q RequestPacket
	if n := testing.AllocsPerRun(100, func() { _ = q.Decode(body) }); n != 0 {
		t.Fatalf("%v allocations per decode", n)
	}
}

// hugeMapBody returns a request body whose context claims n entries and
// holds pad bytes of ZERO heads after the claim.
func hugeMapBody(n int64, pad int) []byte {
	p := RequestPacket{Version: VersionTars, RequestID: 9, ServantName: "S", FuncName: "f"}
	b := p.Append(nil)
	b = b[:len(b)-4] // drop the empty context and status
	b = AppendInt(AppendHead(b, 9, TypeMap), 0, n)
	return append(b, bytes.Repeat([]byte{0x0C}, pad)...)
}

// TestContextLimits: context and status maps are bounded in entries and
// bytes, and a huge claimed count fails before anything is allocated for it.
func TestContextLimits(t *testing.T) {
	big := make(map[string]string)
	for i := range MaxContextLen {
		big[fmt.Sprint("k", i)] = "v"
	}
	p := RequestPacket{Version: VersionTars, Context: big, Status: big}
	var q RequestPacket
	if err := q.Decode(p.Append(nil)); err != nil || !maps.Equal(q.Context, big) {
		t.Fatalf("%d entries: %v", MaxContextLen, err)
	}
	big["one more"] = "v"
	for name, c := range map[string]struct {
		ctx, status map[string]string
		want        string
	}{
		"context entries": {big, nil, "decode tag 9 at offset 13: map of 65 elements exceeds the limit of 64"},
		"status entries":  {nil, big, "decode tag 10 at offset 15: map of 65 elements exceeds the limit of 64"},
		"context bytes":   {map[string]string{"a": strings.Repeat("x", MaxContextBytes/2), "b": strings.Repeat("y", MaxContextBytes/2)}, nil, "map keys and values exceed 65536 bytes"},
	} {
		p := RequestPacket{Version: VersionTars, Context: c.ctx, Status: c.status}
		err := q.Decode(p.Append(nil))
		var de *DecodeError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
		rsp := ResponsePacket{Version: VersionTars, Context: c.ctx, Status: c.status}
		var r ResponsePacket
		if err := r.Decode(rsp.Append(nil)); !errors.As(err, &de) {
			t.Errorf("%s in a response: %v", name, err)
		}
	}
	body := hugeMapBody(2<<20, 9<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := q.Decode(body)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "map of 2097152 elements exceeds the limit of 64") {
		t.Fatalf("claimed 2M entries: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("a huge claimed context allocated %d bytes", n)
	}
}

func TestTUPReply(t *testing.T) {
	req := RequestPacket{Version: VersionTUP, RequestID: 9, ServantName: "A.B.PushObj", FuncName: "pushAll", Timeout: 3000}
	ret := AppendInt(nil, 0, 3)
	rsp := TUPReply(&req, Success, "", map[string][]byte{"": ret, "tars_ret": ret, "delivered": AppendInt(nil, 0, 2)})
	var got RequestPacket
	if err := got.Decode(rsp.AppendFrame(nil)[4:]); err != nil {
		t.Fatal(err)
	}
	if got.Version != VersionTUP || got.RequestID != 9 || got.ServantName != req.ServantName || got.FuncName != req.FuncName {
		t.Fatalf("got %+v", got)
	}
	if code, desc, err := TUPResult(&got); code != Success || desc != "" || err != nil {
		t.Fatalf("TUPResult: %d %q %v", code, desc, err)
	}
	m, err := decodeTUP(got.Buffer)
	if err != nil {
		t.Fatal(err)
	}
	n, err := tupInt32(m, "tars_ret")
	d, err2 := tupInt32(m, "delivered")
	if n != 3 || d != 2 || err != nil || err2 != nil || !bytes.Equal(m[""], ret) {
		t.Fatalf("values %v: %d %d %v %v", m, n, d, err, err2)
	}

	rsp = TUPReply(&req, ServerNoFuncErr, "no function", nil)
	if err := got.Decode(rsp.Append(nil)); err != nil {
		t.Fatal(err)
	}
	if got.Status[StatusResultCode] != "-3" {
		t.Fatalf("status %v", got.Status)
	}
	if code, desc, err := TUPResult(&got); code != ServerNoFuncErr || desc != "no function" || err != nil {
		t.Fatalf("TUPResult: %d %q %v", code, desc, err)
	}
	got.Status[StatusResultCode] = "x"
	if _, _, err := TUPResult(&got); err == nil {
		t.Fatal("bad code: no error")
	}
}
