package tars

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The Push IDL: int pushByRoom(string roomNum, string message, out int delivered).
func putPushArgs(r *Results) {
	r.PutString(1, "roomNum", "room1")
	r.PutString(2, "message", "hi")
}

func TestArgsRoundTrip(t *testing.T) {
	for _, v := range []int16{VersionTars, VersionTUP, VersionJSON} {
		r := NewResults(v)
		r.PutInt32(0, "", 7)
		r.PutString(1, "s", "héllo")
		r.PutBool(2, "b", true)
		putVia(r, 3, "l", int64(-1<<40), AppendInt)
		putVia(r, 4, "raw", []byte{0, 1, 2}, AppendBytes)
		putVia(r, 5, "m", map[string]string{"k": "v"}, AppendStringMap)
		buf, err := r.AppendTo(nil)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		a, err := NewArgs(v, buf)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		ret, err := a.Int32(0, "")
		if err != nil || ret != 7 {
			t.Errorf("version %d: return value = %d, %v", v, ret, err)
		}
		if s, err := a.String(1, "s"); err != nil || s != "héllo" {
			t.Errorf("version %d: s = %q, %v", v, s, err)
		}
		if b, err := a.Bool(2, "b"); err != nil || !b {
			t.Errorf("version %d: b = %v, %v", v, b, err)
		}
		if l, err := getVia(a, 3, "l", (*Decoder).ReadInt64); err != nil || l != -1<<40 {
			t.Errorf("version %d: l = %d, %v", v, l, err)
		}
		if p, err := getVia(a, 4, "raw", (*Decoder).ReadBytes); err != nil || !bytes.Equal(p, []byte{0, 1, 2}) {
			t.Errorf("version %d: raw = %x, %v", v, p, err)
		}
		if m, err := getVia(a, 5, "m", (*Decoder).ReadStringMap); err != nil || len(m) != 1 || m["k"] != "v" {
			t.Errorf("version %d: m = %v, %v", v, m, err)
		}
	}
}

// putVia adds v with PutJSON in JSON and encoded by app otherwise, for the
// types that have no Put method of their own.
func putVia[T any](r *Results, tag uint8, name string, v T, app func([]byte, uint8, T) []byte) {
	if r.version == VersionJSON {
		r.PutJSON(tag, name, v)
		return
	}
	r.Put(tag, name, func(b []byte, tag uint8) []byte { return app(b, tag, v) })
}

// getVia reads what putVia put, with JSON or Value and read.
func getVia[T any](a *Args, tag uint8, name string, read func(*Decoder, *T, uint8, bool) error) (T, error) {
	var v T
	if a.version == VersionJSON {
		return v, a.JSON(tag, name, &v)
	}
	return v, a.Value(tag, name, func(d *Decoder, tag uint8) error { return read(d, &v, tag, true) })
}

// tupInt32 reads the int32 under key in a TUP argument map.
func tupInt32(m map[string][]byte, key string) (int32, error) {
	var v int32
	err := NewDecoder(m[key]).ReadInt32(&v, 0, true)
	return v, err
}

// TestArgsTarsLayout: TARS puts parameter i at tag i.
func TestArgsTarsLayout(t *testing.T) {
	r := NewResults(VersionTars)
	putPushArgs(r)
	got, _ := r.AppendTo(nil)
	want := append(AppendString(nil, 1, "room1"), AppendString(nil, 2, "hi")...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %X, want %X", got, want)
	}
	var zero Results // the zero value encodes TARS
	zero.PutInt32(0, "", 1)
	if b, err := zero.AppendTo(nil); err != nil || !bytes.Equal(b, []byte{0x00, 0x01}) {
		t.Fatalf("zero Results: %X, %v", b, err)
	}
}

// TestArgsTUPVerified checks the TUP argument map of the spec's verified
// example, notify("tars.viewversion").
func TestArgsTUPVerified(t *testing.T) {
	want, _ := hex.DecodeString("0800010607" + hex.EncodeToString([]byte("command")) + "1D000012" +
		"0610" + hex.EncodeToString([]byte("tars.viewversion")))
	r := NewResults(VersionTUP)
	r.PutString(1, "command", "tars.viewversion")
	got, err := r.AppendTo(nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %X, %v\nwant %X", got, err, want)
	}
	a, err := NewArgs(VersionTUP, want)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := a.String(1, "command"); err != nil || s != "tars.viewversion" {
		t.Fatalf("command = %q, %v", s, err)
	}
}

// TestArgsTUPReturn: the return value goes under both "" and "tars_ret", and
// a reply with only "tars_ret" still reads.
func TestArgsTUPReturn(t *testing.T) {
	r := NewResults(VersionTUP)
	r.PutInt32(0, "", 3)
	r.PutInt32(3, "delivered", 3)
	buf, _ := r.AppendTo(nil)
	m, err := decodeTUP(buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", "tars_ret", "delivered"} {
		if v, err := tupInt32(m, k); err != nil || v != 3 {
			t.Errorf("%q = %d, %v", k, v, err)
		}
	}
	only := AppendTUP(nil, map[string][]byte{"tars_ret": AppendInt(nil, 0, 9)})
	a, _ := NewArgs(VersionTUP, only)
	if v, err := a.Int32(0, ""); err != nil || v != 9 {
		t.Fatalf("return from tars_ret = %d, %v", v, err)
	}
}

func TestArgsJSONLayout(t *testing.T) {
	r := NewResults(VersionJSON)
	r.PutInt32(0, "", 0)
	r.PutInt32(3, "delivered", 2)
	got, err := r.AppendTo(nil)
	if err != nil || string(got) != `{"delivered":2,"tars_ret":0}` {
		t.Fatalf("got %s, %v", got, err)
	}
	a, err := NewArgs(VersionJSON, []byte(`{"roomNum":"room1","message":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := a.String(1, "roomNum"); err != nil || s != "room1" {
		t.Fatalf("roomNum = %q, %v", s, err)
	}
}

func TestArgsErrors(t *testing.T) {
	tarsArgs, _ := NewArgs(VersionTars, AppendInt(nil, 1, 5))
	tupArgs, _ := NewArgs(VersionTUP, AppendTUP(nil, map[string][]byte{"n": AppendInt(nil, 0, 5)}))
	jsonArgs, _ := NewArgs(VersionJSON, []byte(`{"n":5}`))
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"tars missing", second(tarsArgs.String(2, "s")), "argument s (tag 2)"},
		{"tars wrong type", second(tarsArgs.String(1, "n")), "INT1 cannot be read as string"},
		{"tup missing", second(tupArgs.String(2, "s")), "argument s (tag 2): missing"},
		{"tup wrong type", second(tupArgs.String(1, "n")), "cannot be read as string"},
		{"json missing", second(jsonArgs.String(2, "s")), "argument s (tag 2): missing"},
		{"json wrong type", second(jsonArgs.String(1, "n")), "cannot unmarshal number"},
		{"json struct", jsonArgs.Value(1, "n", func(*Decoder, uint8) error { return nil }), "no Tars encoding"},
		{"return missing", second(tarsArgs.Int32(0, "")), "argument return value (tag 0)"},
	} {
		var ae *ArgError
		if !errors.As(c.err, &ae) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: got %v, want an *ArgError containing %q", c.name, c.err, c.want)
		}
	}
	for _, c := range []struct {
		v    int16
		buf  string
		want string
	}{
		{VersionTUP, "\x08", "TUP argument map"},
		{VersionTUP, "\x16\x01x", "TUP argument map"},
		{VersionJSON, "{", "JSON arguments"},
		{2, "", "unsupported packet version 2"},
	} {
		if _, err := NewArgs(c.v, []byte(c.buf)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewArgs(%d, %q) = %v, want %q", c.v, c.buf, err, c.want)
		}
	}
}

func TestResultsErrors(t *testing.T) {
	r := NewResults(VersionTars)
	r.PutString(2, "b", "x")
	r.PutString(1, "a", "y")
	if _, err := r.AppendTo(nil); err == nil || !strings.Contains(err.Error(), "ascending tag order") {
		t.Errorf("out of order: %v", err)
	}
	j := NewResults(VersionJSON)
	j.Put(1, "s", func(b []byte, tag uint8) []byte { return b })
	if _, err := j.AppendTo(nil); err == nil || !strings.Contains(err.Error(), "argument s (tag 1)") {
		t.Errorf("Put on JSON: %v", err)
	}
	if _, err := NewResults(2).AppendTo(nil); err == nil {
		t.Errorf("version 2 encoded")
	}
	jv := NewResults(VersionJSON)
	jv.PutJSON(1, "ch", make(chan int))
	if _, err := jv.AppendTo(nil); err == nil {
		t.Errorf("a channel marshalled as JSON")
	}
}

func second[T any](_ T, err error) error { return err }

// TestArgsMaxLen: a servant bounds each list or map argument with MaxLen,
// in TARS and TUP alike, and the default bound holds without it.
func TestArgsMaxLen(t *testing.T) {
	three := map[string]string{"a": "1", "b": "2", "c": "3"}
	for _, v := range []int16{VersionTars, VersionTUP} {
		r := NewResults(v)
		putVia(r, 1, "m", three, AppendStringMap)
		r.Put(2, "l", func(b []byte, tag uint8) []byte {
			return AppendInt(AppendInt(AppendListHead(b, tag, 2), 0, 7), 0, 8)
		})
		buf, _ := r.AppendTo(nil)
		in, err := NewArgs(v, buf)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := getVia(in, 1, "m", (*Decoder).ReadStringMap); err != nil || len(m) != 3 {
			t.Fatalf("version %d: default limit: %v, %v", v, m, err)
		}
		in.MaxLen = 2
		if _, err := getVia(in, 1, "m", (*Decoder).ReadStringMap); err == nil || !strings.Contains(err.Error(), "argument m (tag 1): tars: decode tag") ||
			!strings.Contains(err.Error(), "map of 3 elements exceeds the limit of 2") {
			t.Errorf("version %d: StringMap over MaxLen: %v", v, err)
		}
		err = in.Value(2, "l", func(d *Decoder, tag uint8) error { _, _, err := d.ReadListLen(tag, true); return err })
		if err != nil {
			t.Errorf("version %d: list of 2 with MaxLen 2: %v", v, err)
		}
		in.MaxLen = 1
		err = in.Value(2, "l", func(d *Decoder, tag uint8) error { _, _, err := d.ReadListLen(tag, true); return err })
		if err == nil || !strings.Contains(err.Error(), "list of 2 elements exceeds the limit of 1") {
			t.Errorf("version %d: list over MaxLen: %v", v, err)
		}
	}
	many := []byte(`{"a":0`)
	for i := range DefaultMaxLen {
		many = fmt.Appendf(many, `,"%d":0`, i)
	}
	if _, err := NewArgs(VersionJSON, append(many, '}')); err == nil || !strings.Contains(err.Error(), "more than 65536 members") {
		t.Errorf("JSON object of %d members: %v", DefaultMaxLen+1, err)
	}
}

// TestArgsSkipDoesNotAllocate: reading a later argument skips a huge earlier
// one without allocating, so a servant can check a token first.
func TestArgsSkipDoesNotAllocate(t *testing.T) {
	b := AppendListHead(nil, 1, 1<<20)
	for range 1 << 20 {
		b = AppendStructEnd(AppendStructBegin(b, 0))
	}
	b = AppendInt(b, 2, 42)
	in, err := NewArgs(VersionTars, b)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(5, func() {
		if v, err := in.Int32(2, "token"); v != 42 || err != nil {
			t.Fatalf("Int32 = %d, %v", v, err)
		}
	}); n != 0 {
		t.Errorf("%v allocations to skip the list", n)
	}
	if err := in.Value(1, "msgs", func(d *Decoder, tag uint8) error { _, _, err := d.ReadListLen(tag, true); return err }); err == nil ||
		!strings.Contains(err.Error(), "list of 1048576 elements exceeds the limit of 65536") {
		t.Errorf("the list itself: %v", err)
	}
}

func TestDecodeTUP(t *testing.T) {
	m, err := decodeTUP(unhex(t, `08 00 01 06 07 "command" 1D 00 00 12 [06 10 "tars.viewversion"]`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewArgs(VersionTUP, AppendTUP(nil, m))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := a.String(1, "command"); err != nil || s != "tars.viewversion" {
		t.Fatalf("command: %q, %v", s, err)
	}
	if _, err := a.String(2, "other"); err == nil || !strings.Contains(err.Error(), "argument other (tag 2): missing") {
		t.Fatalf("missing name: %v", err)
	}
	if _, err := a.Int32(1, "command"); err == nil || !strings.Contains(err.Error(), "STRING1 cannot be read as int32") {
		t.Fatalf("string as int: %v", err)
	}
	for _, bad := range []string{``, `0C`, `06 01 "a"`, `08 00 01 06 01 "a" 16 01 "b"`} {
		if _, err := decodeTUP(unhex(t, bad)); err == nil {
			t.Errorf("decodeTUP(%s): no error", bad)
		}
	}
}
