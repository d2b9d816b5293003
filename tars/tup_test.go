package tars

import (
	"bytes"
	"strings"
	"testing"
)

func TestDecodeTUP(t *testing.T) {
	m, err := DecodeTUP(unhex(t, `08 00 01 06 07 "command" 1D 00 00 12 [06 10 "tars.viewversion"]`))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := TUPString(m, "command"); err != nil || s != "tars.viewversion" {
		t.Fatalf("command: %q, %v", s, err)
	}
	if _, err := TUPString(m, "other"); err == nil || !strings.Contains(err.Error(), `no value named "other"`) {
		t.Fatalf("missing name: %v", err)
	}
	if _, err := TUPInt32(m, "command"); err == nil || !strings.Contains(err.Error(), "STRING1 cannot be read as int32") {
		t.Fatalf("string as int: %v", err)
	}
	for _, bad := range []string{``, `0C`, `06 01 "a"`, `08 00 01 06 01 "a" 16 01 "b"`} {
		if _, err := DecodeTUP(unhex(t, bad)); err == nil {
			t.Errorf("DecodeTUP(%s): no error", bad)
		}
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
	m, err := DecodeTUP(got.Buffer)
	if err != nil {
		t.Fatal(err)
	}
	n, err := TUPInt32(m, "tars_ret")
	d, err2 := TUPInt32(m, "delivered")
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
