package tars

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// vector is one encoding made by TarsGo v1.4.5, from testdata/tars-vectors.json.
type vector struct {
	Name  string
	Type  string
	Tag   uint8
	Value json.RawMessage
	Hex   string
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/tars-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Vectors []vector }
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) != 273 {
		t.Fatalf("%d vectors, want 273", len(file.Vectors))
	}
	return file.Vectors
}

// TestVectors checks that every vector encodes to exactly its bytes and that
// its bytes decode back to its value.
func TestVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		want, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatal(err)
		}
		name := v.Name + "/" + strconv.Itoa(i)
		t.Run(name, func(t *testing.T) {
			got, err := checkVector(v, want)
			if err != nil {
				t.Fatalf("%s at tag %d = %s: %v", v.Type, v.Tag, v.Value, err)
			}
			if got != nil && !bytes.Equal(got, want) {
				t.Fatalf("%s at tag %d = %s:\n got %x\nwant %x", v.Type, v.Tag, v.Value, got, want)
			}
			if strings.HasSuffix(v.Name, "Packet") {
				return // a packet is a run of fields, not one value
			}
			// Whatever the type, Skip walks exactly over the value.
			_, typ, n, err := consumeHead(want)
			if err != nil {
				t.Fatal(err)
			}
			if m, err := skipValue(want[n:], typ); err != nil || n+m != len(want) {
				t.Fatalf("Skip: %d, %v; want %d", m, err, len(want)-n)
			}
		})
	}
}

// checkVector decodes want as v.Type, compares the result with v.Value and
// returns our own encoding of v.Value (nil when the vector holds fields we
// do not encode).
func checkVector(v vector, want []byte) (got []byte, err error) {
	d := NewDecoder(want)
	mismatch := func(x any) error { return &DecodeError{Offset: -1, Tag: int(v.Tag), What: "decoded " + jsonString(x)} }
	switch {
	case v.Type == "long":
		x, err := strconv.ParseInt(string(v.Value), 10, 64)
		if err != nil {
			return nil, err
		}
		var r int64
		if err := d.ReadInt64(&r, v.Tag, true); err != nil {
			return nil, err
		}
		if r != x {
			return nil, mismatch(r)
		}
		return AppendInt(nil, v.Tag, x), nil
	case v.Type == "int":
		x, err := strconv.ParseInt(string(v.Value), 10, 32)
		if err != nil {
			return nil, err
		}
		var r int32
		if err := d.ReadInt32(&r, v.Tag, true); err != nil {
			return nil, err
		}
		if int64(r) != x {
			return nil, mismatch(r)
		}
		return AppendInt(nil, v.Tag, x), nil
	case v.Type == "bool":
		x := string(v.Value) == "true"
		var r bool
		if err := d.ReadBool(&r, v.Tag, true); err != nil {
			return nil, err
		}
		if r != x {
			return nil, mismatch(r)
		}
		return AppendBool(nil, v.Tag, x), nil
	case v.Type == "float":
		x, err := strconv.ParseFloat(string(v.Value), 32)
		if err != nil {
			return nil, err
		}
		var r float32
		if err := d.ReadFloat(&r, v.Tag, true); err != nil {
			return nil, err
		}
		if r != float32(x) {
			return nil, mismatch(r)
		}
		return AppendFloat(nil, v.Tag, float32(x)), nil
	case v.Type == "double":
		x, err := strconv.ParseFloat(string(v.Value), 64)
		if err != nil {
			return nil, err
		}
		var r float64
		if err := d.ReadDouble(&r, v.Tag, true); err != nil {
			return nil, err
		}
		if r != x {
			return nil, mismatch(r)
		}
		return AppendDouble(nil, v.Tag, x), nil
	case v.Type == "string":
		var x, r string
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return nil, err
		}
		if err := d.ReadString(&r, v.Tag, true); err != nil {
			return nil, err
		}
		if r != x {
			return nil, mismatch(r)
		}
		return AppendString(nil, v.Tag, x), nil
	case v.Type == "vector<byte>":
		var s string
		if err := json.Unmarshal(v.Value, &s); err != nil {
			return nil, err
		}
		x, err := hex.DecodeString(s)
		if err != nil {
			return nil, err
		}
		var r []byte
		if err := d.ReadBytes(&r, v.Tag, true); err != nil {
			return nil, err
		}
		if !bytes.Equal(r, x) {
			return nil, mismatch(r)
		}
		return AppendBytes(nil, v.Tag, x), nil
	case v.Type == "map<string,string>":
		var x, r map[string]string
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return nil, err
		}
		if err := d.ReadStringMap(&r, v.Tag, true); err != nil {
			return nil, err
		}
		if len(r) != len(x) {
			return nil, mismatch(r)
		}
		for k := range x {
			if e, ok := r[k]; !ok || e != x[k] {
				return nil, mismatch(r)
			}
		}
		return AppendStringMap(nil, v.Tag, x), nil
	case v.Type == "vector<int>":
		var x []int32
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return nil, err
		}
		n, _, err := d.ReadListLen(v.Tag, true)
		if err != nil {
			return nil, err
		}
		r := make([]int32, n)
		for i := range r {
			if err := d.ReadInt32(&r[i], 0, true); err != nil {
				return nil, err
			}
		}
		if !slices.Equal(r, x) {
			return nil, mismatch(r)
		}
		got = AppendListHead(nil, v.Tag, len(x))
		for _, e := range x {
			got = AppendInt(got, 0, int64(e))
		}
		return got, nil
	case strings.HasPrefix(v.Type, "struct{0 int a"):
		var x struct {
			A int32
			B string
		}
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return nil, err
		}
		r := struct {
			A int32
			B string
		}{A: 7, B: "x"}
		if _, err := d.ReadStructBegin(v.Tag, true); err != nil {
			return nil, err
		}
		if err := d.ReadInt32(&r.A, 0, false); err != nil {
			return nil, err
		}
		if err := d.ReadString(&r.B, 1, false); err != nil {
			return nil, err
		}
		if err := d.ReadStructEnd(); err != nil {
			return nil, err
		}
		if r != x || d.Offset() != len(want) {
			return nil, mismatch(r)
		}
		if strings.Contains(v.Type, "unknown") {
			return nil, nil
		}
		got = AppendStructBegin(nil, v.Tag)
		got = AppendInt(got, 0, int64(x.A))
		got = AppendString(got, 1, x.B)
		return AppendStructEnd(got), nil
	case strings.HasPrefix(v.Type, "RequestPacket"):
		var x struct {
			IRequestID   int32 `json:"iRequestId"`
			ITimeout     int32
			IVersion     int16
			SBufferHex   string
			SFuncName    string
			SServantName string
		}
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return nil, err
		}
		buf, err := hex.DecodeString(x.SBufferHex)
		if err != nil {
			return nil, err
		}
		p := RequestPacket{Version: x.IVersion, RequestID: x.IRequestID, ServantName: x.SServantName,
			FuncName: x.SFuncName, Buffer: buf, Timeout: x.ITimeout}
		var r RequestPacket
		if err := r.Decode(want); err != nil {
			return nil, err
		}
		if r.Version != p.Version || r.PacketType != 0 || r.MessageType != 0 || r.RequestID != p.RequestID ||
			r.ServantName != p.ServantName || r.FuncName != p.FuncName || !bytes.Equal(r.Buffer, buf) ||
			r.Timeout != p.Timeout || r.Context != nil || r.Status != nil {
			return nil, mismatch(r)
		}
		return p.Append(nil), nil
	case strings.HasPrefix(v.Type, "ResponsePacket"):
		var x struct {
			IRequestID int32 `json:"iRequestId"`
			IRet       int32
			IVersion   int16
			SBufferHex string
		}
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return nil, err
		}
		buf, err := hex.DecodeString(x.SBufferHex)
		if err != nil {
			return nil, err
		}
		p := ResponsePacket{Version: x.IVersion, RequestID: x.IRequestID, Ret: x.IRet, Buffer: buf}
		var r ResponsePacket
		if err := r.Decode(want); err != nil {
			return nil, err
		}
		if r.Version != p.Version || r.RequestID != p.RequestID || r.Ret != p.Ret || !bytes.Equal(r.Buffer, buf) ||
			r.Status != nil || r.ResultDesc != "" || r.Context != nil {
			return nil, mismatch(r)
		}
		return p.Append(nil), nil
	}
	return nil, &DecodeError{Tag: int(v.Tag), What: "no test for type " + v.Type}
}

func jsonString(x any) string {
	b, _ := json.Marshal(x)
	return string(b)
}
