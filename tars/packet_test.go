package tars

import (
	"bytes"
	"encoding/hex"
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
