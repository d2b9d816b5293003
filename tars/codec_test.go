package tars

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestAppendExamples(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"int 5 at tag 20", AppendInt(nil, 20, 5), "F0 14 05"},
		{"0 at tag 3", AppendInt(nil, 3, 0), "3C"},
		{"1 at tag 3", AppendInt(nil, 3, 1), "30 01"},
		{"-1 at tag 3", AppendInt(nil, 3, -1), "30 FF"},
		{"128 at tag 3", AppendInt(nil, 3, 128), "31 00 80"},
		{"32768 at tag 3", AppendInt(nil, 3, 32768), "32 00 00 80 00"},
		{"2^31 at tag 3", AppendInt(nil, 3, 1<<31), "33 00 00 00 00 80 00 00 00"},
		{"true at tag 2", AppendBool(nil, 2, true), "20 01"},
		{"false at tag 2", AppendBool(nil, 2, false), "2C"},
		{"0.0f at tag 1", AppendFloat(nil, 1, 0), "14 00 00 00 00"},
		{"empty vector<byte> at tag 7", AppendBytes(nil, 7, nil), "7D 00 0C"},
		{"struct end", AppendStructEnd(nil), "0B"},
		{"TUP argument map", AppendTUP(nil, map[string][]byte{"command": AppendString(nil, 0, "tars.viewversion")}),
			`08 00 01 06 07 "command" 1D 00 00 12 [06 10 "tars.viewversion"]`},
		{"string of 256 at tag 1", AppendString(nil, 1, strings.Repeat("z", 256))[:6], "17 00 00 01 00 7A"},
		{"map keys sorted", AppendStringMap(nil, 0, map[string]string{"b": "2", "a": "1"}),
			`08 00 02 06 01 "a" 16 01 "1" 06 01 "b" 16 01 "2"`},
	} {
		if want := unhex(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s: got %X, want %X", c.name, c.got, want)
		}
	}
}

func TestAppendReusedBuffer(t *testing.T) {
	b := AppendInt([]byte("prefix"), 1, 7)
	if string(b[:6]) != "prefix" || !bytes.Equal(b[6:], []byte{0x10, 7}) {
		t.Fatalf("got %q", b)
	}
}

// stored holds one encoding of each integer type at tag 0, with the value
// each decodes to.
var stored = []struct {
	typ byte
	enc []byte
	val int64
}{
	{TypeZero, []byte{0x0C}, 0},
	{TypeInt1, []byte{0x00, 0xFF}, -1},
	{TypeInt2, []byte{0x01, 0xFF, 0x7F}, -129},
	{TypeInt4, []byte{0x02, 0xFF, 0xFE, 0xEE, 0x90}, -70000},
	{TypeInt8, []byte{0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF}, -2147483649},
}

// TestIntegerWidths checks which stored integer types each reader accepts,
// and that narrower types are sign-extended.
func TestIntegerWidths(t *testing.T) {
	readers := []struct {
		name   string
		widest byte
		read   func(d *Decoder) (int64, error)
	}{
		{"int8", TypeInt1, func(d *Decoder) (int64, error) { var v int8; err := d.ReadInt8(&v, 0, true); return int64(v), err }},
		{"int16", TypeInt2, func(d *Decoder) (int64, error) { var v int16; err := d.ReadInt16(&v, 0, true); return int64(v), err }},
		{"int32", TypeInt4, func(d *Decoder) (int64, error) { var v int32; err := d.ReadInt32(&v, 0, true); return int64(v), err }},
		{"int64", TypeInt8, func(d *Decoder) (int64, error) { var v int64; err := d.ReadInt64(&v, 0, true); return v, err }},
	}
	for _, r := range readers {
		for _, s := range stored {
			got, err := r.read(NewDecoder(s.enc))
			fits := s.typ == TypeZero || s.typ <= r.widest
			switch {
			case fits && (err != nil || got != s.val):
				t.Errorf("%s from %s: got %d, %v; want %d", r.name, typeNames[s.typ], got, err, s.val)
			case !fits && err == nil:
				t.Errorf("%s from %s: no error", r.name, typeNames[s.typ])
			case !fits && !strings.Contains(err.Error(), typeNames[s.typ]+" cannot be read as "+r.name):
				t.Errorf("%s from %s: error %q does not name the types", r.name, typeNames[s.typ], err)
			}
		}
	}
}

func TestBoolFromInt1(t *testing.T) {
	var v bool
	if err := NewDecoder([]byte{0x00, 0x02}).ReadBool(&v, 0, true); err != nil || !v {
		t.Fatalf("got %v, %v", v, err)
	}
	if err := NewDecoder([]byte{0x01, 0x00, 0x01}).ReadBool(&v, 0, true); err == nil {
		t.Fatal("bool from INT2: no error")
	}
}

func TestUnsignedWidened(t *testing.T) {
	var b []byte
	b = AppendInt(b, 0, 255)            // uint8 as a short
	b = AppendInt(b, 1, 65535)          // uint16 as an int
	b = AppendInt(b, 2, math.MaxUint32) // uint32 as a long
	d := NewDecoder(b)
	var u8 uint8
	var u16 uint16
	var u32 uint32
	if err := errors.Join(d.ReadUint8(&u8, 0, true), d.ReadUint16(&u16, 1, true), d.ReadUint32(&u32, 2, true)); err != nil {
		t.Fatal(err)
	}
	if u8 != 255 || u16 != 65535 || u32 != math.MaxUint32 {
		t.Fatalf("got %d %d %d", u8, u16, u32)
	}
	for _, c := range []struct {
		enc  []byte
		read func(d *Decoder) error
	}{
		{AppendInt(nil, 0, 256), func(d *Decoder) error { return d.ReadUint8(&u8, 0, true) }},
		{AppendInt(nil, 0, -1), func(d *Decoder) error { return d.ReadUint16(&u16, 0, true) }},
		{AppendInt(nil, 0, math.MaxUint32+1), func(d *Decoder) error { return d.ReadUint32(&u32, 0, true) }},
	} {
		if err := c.read(NewDecoder(c.enc)); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("%X: error %v, want out of range", c.enc, err)
		}
	}
}

func TestFloatsAcceptZero(t *testing.T) {
	f, g := float32(9), float64(9)
	d := NewDecoder([]byte{0x0C, 0x1C})
	if err := errors.Join(d.ReadFloat(&f, 0, true), d.ReadDouble(&g, 1, true)); err != nil || f != 0 || g != 0 {
		t.Fatalf("got %v %v, %v", f, g, err)
	}
	d = NewDecoder(AppendFloat(nil, 0, 1.5))
	if err := d.ReadDouble(&g, 0, true); err != nil || g != 1.5 {
		t.Fatalf("double from FLOAT: %v, %v", g, err)
	}
	d = NewDecoder(AppendDouble(nil, 0, 1.5))
	if err := d.ReadFloat(&f, 0, true); err == nil || !strings.Contains(err.Error(), "DOUBLE cannot be read as float32") {
		t.Fatalf("float from DOUBLE: %v", err)
	}
	d = NewDecoder(AppendInt(nil, 0, 1))
	if err := d.ReadDouble(&g, 0, true); err == nil {
		t.Fatal("double from INT1: no error")
	}
}

func TestBytesFromListOfInt1(t *testing.T) {
	b := AppendListHead(nil, 4, 3)
	b = AppendInt(b, 0, 0) // a zero byte is written as ZERO
	b = AppendInt(b, 0, -1)
	b = AppendInt(b, 0, 7)
	var p []byte
	if err := NewDecoder(b).ReadBytes(&p, 4, true); err != nil || !bytes.Equal(p, []byte{0, 0xFF, 7}) {
		t.Fatalf("got %X, %v", p, err)
	}
	b = AppendListHead(nil, 4, 1)
	b = AppendInt(b, 0, 300)
	if err := NewDecoder(b).ReadBytes(&p, 4, true); err == nil || !strings.Contains(err.Error(), "element 0") {
		t.Fatalf("list of INT2 as bytes: %v", err)
	}
}

func TestBytesAlias(t *testing.T) {
	b := AppendBytes(nil, 0, []byte("abc"))
	var p []byte
	if err := NewDecoder(b).ReadBytes(&p, 0, true); err != nil {
		t.Fatal(err)
	}
	if &p[0] != &b[len(b)-3] {
		t.Fatal("ReadBytes copied a SIMPLE_LIST")
	}
	if cap(p) != 3 {
		t.Fatalf("cap %d: appending to the result would overwrite the input", cap(p))
	}
}

// TestFieldLookup walks a struct with gaps: smaller tags are skipped, absent
// optional fields keep their defaults, absent required fields are errors.
func TestFieldLookup(t *testing.T) {
	var b []byte
	b = AppendString(b, 1, "skipped")
	b = AppendInt(b, 3, 33)
	b = AppendStringMap(b, 4, map[string]string{"k": "v"})
	b = AppendInt(b, 200, 7)

	d := NewDecoder(b)
	a, c := int32(-5), int32(0)
	if err := d.ReadInt32(&a, 2, false); err != nil || a != -5 {
		t.Fatalf("optional tag 2: %d, %v; want default -5 kept", a, err)
	}
	if err := d.ReadInt32(&c, 3, true); err != nil || c != 33 {
		t.Fatalf("tag 3: %d, %v", c, err)
	}
	var s string
	err := d.ReadString(&s, 3, true)
	var de *DecodeError
	if !errors.As(err, &de) || de.Tag != 3 || !strings.Contains(err.Error(), "required field missing") {
		t.Fatalf("tag 3 again: %v", err)
	}
	var far int64
	if err := d.ReadInt64(&far, 200, true); err != nil || far != 7 {
		t.Fatalf("tag 200 after skipping a map: %d, %v", far, err)
	}
	if err := d.ReadInt64(&far, 201, false); err != nil || far != 7 || d.Offset() != len(b) {
		t.Fatalf("past the end: %d, %v, offset %d", far, err, d.Offset())
	}

	var zero Decoder
	if err := zero.ReadInt64(&far, 0, false); err != nil {
		t.Fatalf("zero Decoder, optional: %v", err)
	}
	if err := zero.ReadInt64(&far, 0, true); err == nil {
		t.Fatal("zero Decoder, required: no error")
	}
}

// TestNestedStruct reads a struct inside a struct, with an unknown trailing
// field in the inner one, then a field after it.
func TestNestedStruct(t *testing.T) {
	var b []byte
	b = AppendStructBegin(b, 0)
	b = AppendInt(b, 0, 1)
	b = AppendStructBegin(b, 1)
	b = AppendString(b, 0, "in")
	b = AppendDouble(b, 9, 2.5) // unknown to the reader
	b = AppendStructEnd(b)
	b = AppendStructEnd(b)
	b = AppendInt(b, 1, 2)

	d := NewDecoder(b)
	var x, y int32
	var s string
	steps := []error{}
	ok, err := d.ReadStructBegin(0, true)
	steps = append(steps, err)
	steps = append(steps, d.ReadInt32(&x, 0, true))
	_, err = d.ReadStructBegin(1, true)
	steps = append(steps, err, d.ReadString(&s, 0, true), d.ReadStructEnd(), d.ReadInt32(&y, 5, false), d.ReadStructEnd(),
		d.ReadInt32(&y, 1, true))
	if err := errors.Join(steps...); err != nil || !ok || x != 1 || s != "in" || y != 2 || d.Offset() != len(b) {
		t.Fatalf("got %v %d %q %d offset %d: %v", ok, x, s, y, d.Offset(), err)
	}
}

func TestListOfStructs(t *testing.T) {
	b := AppendListHead(nil, 2, 2)
	for _, s := range []string{"a", "b"} {
		b = AppendStructBegin(b, 0)
		b = AppendString(b, 0, s)
		b = AppendStructEnd(b)
	}
	d := NewDecoder(b)
	n, ok, err := d.ReadListLen(2, true)
	if err != nil || !ok || n != 2 {
		t.Fatalf("ReadListLen: %d %v %v", n, ok, err)
	}
	var got []string
	for range n {
		var s string
		if _, err := d.ReadStructBegin(0, true); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(d.ReadString(&s, 0, true), d.ReadStructEnd()); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("got %q", got)
	}
}

// TestDecodeErrors feeds malformed values to the reader that fits them and
// checks the error says what was wrong.
func TestDecodeErrors(t *testing.T) {
	readString := func(d *Decoder) error { var s string; return d.ReadString(&s, 0, true) }
	readBytes := func(d *Decoder) error { var p []byte; return d.ReadBytes(&p, 0, true) }
	readMap := func(d *Decoder) error { var m map[string]string; return d.ReadStringMap(&m, 0, true) }
	readList := func(d *Decoder) error { _, _, err := d.ReadListLen(0, true); return err }
	readInt := func(d *Decoder) error { var v int32; return d.ReadInt32(&v, 0, true) }
	readStruct := func(d *Decoder) error {
		if _, err := d.ReadStructBegin(0, true); err != nil {
			return err
		}
		return d.ReadStructEnd()
	}
	for _, c := range []struct {
		name string
		in   string
		read func(*Decoder) error
		want string
	}{
		{"string too long", `06 05 "abc"`, readString, "tars: decode tag 0 at offset 2: string length 5 exceeds 3 bytes left"},
		{"STRING4 huge", `07 FF FF FF FF "abc"`, readString, "string length 4294967295 exceeds 3 bytes left"},
		{"STRING4 cut length", `07 00 00`, readString, "STRING4 length field 4 exceeds 2 bytes left"},
		{"string as int", `06 01 "a"`, readInt, "STRING1 cannot be read as int32"},
		{"int cut", `02 00 01`, readInt, "INT4 size 4 exceeds 2 bytes left"},
		{"unknown type 14", `0E 00`, readInt, "unknown type code 14"},
		{"unknown type 15", `FF 00`, readInt, "unknown type code 15"},
		{"long tag cut", `F0`, readInt, "input ends before the tag byte"},
		{"map count oversize", `08 01 03 E8 06 01 "a" 16 01 "b"`, readMap, "map count 1000 needs at least 4000 bytes, 6 left"},
		{"map count negative", `08 00 FF`, readMap, "negative map count -1"},
		{"map count as string", `08 06 01 "a"`, readMap, "map count: want an int at tag 0, found STRING1 at tag 0"},
		{"map count at tag 1", `08 10 01 06 01 "a" 16 01 "b"`, readMap, "found INT1 at tag 1"},
		{"map value missing", `08 00 01 06 01 "a" 2C`, readMap, "tag 1 at offset 6: required field missing"},
		{"list count oversize", `09 00 05 0C 0C`, readList, "list count 5 needs at least 5 bytes, 2 left"},
		{"list of structs oversize", `09 00 03 0A 0B 0A 0B 0C`, readList, "list count 3 needs at least 6 bytes, 5 left"},
		{"list of strings oversize", `09 00 02 06 00 0C`, readList, "list count 2 needs at least 4 bytes, 3 left"},
		{"map of structs oversize", `08 00 02 0A 0B 1C 0C`, func(d *Decoder) error { _, _, err := d.ReadMapLen(0, true); return err }, "map count 2 needs at least 6 bytes, 4 left"},
		{"list over MaxLen", `09 00 03 0C 0C 0C`, readList, "list of 3 elements exceeds the limit of 2"},
		{"list over DefaultMaxLen", `09 02 00 01 00 01` + strings.Repeat(" 0C", 1<<16+1), readList, "list of 65537 elements exceeds the limit of 65536"},
		{"list count INT8", `09 03 00 00 00 00 00 00 00 01 0C`, readList, "found INT8 at tag 0"},
		{"simple list oversize", `0D 00 00 09 01 02`, readBytes, "SIMPLE_LIST count 9 needs at least 9 bytes, 2 left"},
		{"simple list bad inner head", `0D 06 01 "a"`, readBytes, "SIMPLE_LIST element head: want INT1 at tag 0, found STRING1 at tag 0"},
		{"bytes as string", `06 01 "a"`, readBytes, "STRING1 cannot be read as vector<byte>"},
		{"struct without end", `0A 00 01 16 01 "a"`, readStruct, "struct has no STRUCT_END"},
		{"int as struct", `00 01`, readStruct, "INT1 cannot be read as struct"},
		{"skipped value cut", `06 05 "ab" 1C`, func(d *Decoder) error { var v int32; return d.ReadInt32(&v, 1, true) }, "string length 5 exceeds 3 bytes left"},
	} {
		d := NewDecoder(unhex(t, c.in))
		if c.name == "list over MaxLen" {
			d.MaxLen = 2
		}
		err := c.read(d)
		var de *DecodeError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want *DecodeError containing %q", c.name, err, c.want)
		}
	}
}

func TestDeepNesting(t *testing.T) {
	for _, c := range []struct {
		name              string
		first, open, tail []byte
	}{
		{"structs", []byte{0x0A}, []byte{0x0A}, []byte{0x0B}},
		{"lists", []byte{0x09}, []byte{0x00, 0x01, 0x09}, nil},
		{"maps", []byte{0x08}, []byte{0x00, 0x01, 0x0C, 0x18}, nil}, // one pair: key 0, value a map at tag 1
	} {
		b := c.first
		for range 1000 {
			b = append(b, c.open...)
		}
		b = append(b, 0x0C)
		for range 1000 {
			b = append(b, c.tail...)
		}
		_, typ, n, err := consumeHead(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := skipValue(b[n:], typ); err == nil || !strings.Contains(err.Error(), "nesting deeper than 100") {
			t.Errorf("%s: Skip error %v", c.name, err)
		}
	}
	// Within the limit, nesting is fine.
	var b []byte
	for range MaxDepth {
		b = AppendStructBegin(b, 0)
	}
	for range MaxDepth {
		b = AppendStructEnd(b)
	}
	if n, err := skipValue(b[1:], TypeStructBegin); err != nil || n != len(b)-1 {
		t.Fatalf("depth %d: %d, %v", MaxDepth, n, err)
	}
	// The Decoder enforces the same limit on structs entered by its caller.
	b = append(b[:0], bytes.Repeat([]byte{0x0A}, MaxDepth+1)...)
	d := NewDecoder(b)
	for i := range MaxDepth + 1 {
		_, err := d.ReadStructBegin(0, true)
		if (i < MaxDepth) != (err == nil) {
			t.Fatalf("ReadStructBegin at depth %d: %v", i, err)
		}
	}
}

// consumeHead parses the head at the start of b: its tag, its type and its
// length in bytes (1 or 2), or n == -1 and why.
func consumeHead(b []byte) (tag uint8, typ byte, n int, err error) {
	d := NewDecoder(b)
	tag, typ, err = d.head(-1)
	if n = d.off; err != nil {
		return 0, 0, -1, err
	}
	return tag, typ, n, nil
}

// skipValue returns the length of the value of type typ at the start of b
// (the bytes after its head), or -1 and why.
func skipValue(b []byte, typ byte) (n int, err error) {
	d := NewDecoder(b)
	if err = d.skip(-1, typ); err != nil {
		return -1, err
	}
	return d.off, nil
}

func TestConsumeHead(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		tag  uint8
		typ  byte
		n    int
		fail bool
	}{
		{[]byte{0x2C}, 2, TypeZero, 1, false},
		{[]byte{0xF0, 0x14, 0x05}, 20, TypeInt1, 2, false},
		{[]byte{0xFB, 0xFF}, 255, TypeStructEnd, 2, false},
		{nil, 0, 0, -1, true},
		{[]byte{0xF0}, 0, 0, -1, true},
		{[]byte{0x1E}, 0, 0, -1, true},
	} {
		tag, typ, n, err := consumeHead(c.in)
		if tag != c.tag || typ != c.typ || n != c.n || (err != nil) != c.fail {
			t.Errorf("consumeHead(%X) = %d, %d, %d, %v", c.in, tag, typ, n, err)
		}
	}
	if n, err := skipValue([]byte{0x01}, TypeInt2); n != -1 || err == nil {
		t.Errorf("Skip of a cut INT2 = %d, %v", n, err)
	}
	if n, err := skipValue(nil, 14); n != -1 || err == nil {
		t.Errorf("Skip of type 14 = %d, %v", n, err)
	}
}
