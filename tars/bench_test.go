package tars

import (
	"bytes"
	"testing"
)

func benchRequest() RequestPacket {
	return RequestPacket{Version: VersionTars, RequestID: 12345, ServantName: "TestApp.WebsocketServer.PushObj",
		FuncName: "pushByRoom", Buffer: bytes.Repeat([]byte{'m'}, 100), Timeout: 3000,
		Context: map[string]string{"trace": "0123456789abcdef", "caller": "TestApp.Other"}}
}

func BenchmarkEncodeRequest(b *testing.B) {
	p := benchRequest()
	buf := p.AppendFrame(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = p.AppendFrame(buf[:0])
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	p := benchRequest()
	body := p.Append(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	var q RequestPacket
	for b.Loop() {
		if err := q.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEncodeAllocs holds encoding into a reused buffer to zero allocations.
func TestEncodeAllocs(t *testing.T) {
	p := benchRequest()
	buf := p.AppendFrame(nil)
	if n := testing.AllocsPerRun(100, func() { buf = p.AppendFrame(buf[:0]) }); n != 0 {
		t.Fatalf("%v allocations per encode", n)
	}
}
